"""Connect through an HTTP, HTTPS or SOCKS5 proxy, and say which route the connection took.

Usage::

    python examples/client_proxy.py wss://echo.example/ http://user:password@proxy:3128
    python examples/client_proxy.py wss://echo.example/ socks5h://127.0.0.1:1080
    https_proxy=http://proxy:3128 python examples/client_proxy.py wss://echo.example/

With a proxy URL, the client goes through it. Without one, it follows the environment:
``https_proxy`` for ``wss://``, ``http_proxy`` for ``ws://``, ``all_proxy`` for both, and
``no_proxy`` for the hosts to reach directly.
"""

from __future__ import annotations

import os
import sys

import syncws
from syncws.core.proxy import get_proxy
from syncws.core.uri import parse_uri


def main(uri: str, proxy: str | None) -> None:
    route = proxy or get_proxy(parse_uri(uri), os.environ) or "a direct connection"
    print(f"connecting to {uri} through {route}")
    try:
        with syncws.connect(uri, proxy=proxy or True, open_timeout=10) as websocket:
            websocket.send("Hello through the proxy!")
            print(websocket.recv(timeout=10))
    except syncws.InvalidProxyStatus as exc:
        # 407: the proxy wants credentials (http://user:password@proxy:port); 403: it does
        # not allow this destination.
        print(f"the proxy refused: HTTP {exc.response.status_code}", file=sys.stderr)
        sys.exit(1)
    except syncws.SocksProxyError as exc:
        # Wrong or missing credentials, a destination the proxy does not allow, or one that
        # it could not reach.
        print(f"the proxy refused: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
