# A self-signed certificate for localhost, valid for 30 days, with an unencrypted key.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout localhost.key -out localhost.crt
# For mutual TLS: a client certificate, self-signed as well.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=alice" -keyout client.key -out client.crt
