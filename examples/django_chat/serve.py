"""Run the chat example under Werkzeug's threaded development server.

Django's own ``runserver`` is built on ``wsgiref``, which never gives the application the
request's socket, so it can't serve WebSocket routes. For development::

    python manage.py migrate
    python serve.py            # http://127.0.0.1:8000/

In production, run it under gunicorn's threaded worker instead::

    gunicorn --worker-class gthread --threads 100 --bind 127.0.0.1:8000 chatsite.wsgi
"""

from __future__ import annotations

from chatsite.wsgi import application
from werkzeug.serving import run_simple

if __name__ == "__main__":
    run_simple("127.0.0.1", 8000, application, threaded=True)
