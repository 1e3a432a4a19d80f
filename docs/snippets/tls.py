"""wss:// on both sides, with a certificate of your own and, optionally, client certificates."""

import ssl

import syncws
from syncws.transport import TLSTransport


def server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    # certfile holds the server's certificate, then any intermediate certificates.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    # Verifies the server's certificate and host name. Without cafile, against the system's
    # certificate authorities; with it, against the certificates in that file only.
    return ssl.create_default_context(cafile=cafile)


def echo(websocket: syncws.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def hello(uri: str, context: ssl.SSLContext) -> str:
    with syncws.connect(uri, ssl=context) as websocket:
        websocket.send("Hello over TLS!")
        return websocket.recv(timeout=10, decode=True)


# Mutual TLS: the server asks for a client certificate and verifies it.


def mutual_server_context(certfile: str, keyfile: str, client_cafile: str) -> ssl.SSLContext:
    context = server_context(certfile, keyfile)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_cafile)
    return context


def mutual_client_context(cafile: str, certfile: str, keyfile: str) -> ssl.SSLContext:
    context = client_context(cafile)
    context.load_cert_chain(certfile, keyfile)
    return context


def whoami(websocket: syncws.ServerConnection) -> None:
    # The verified client certificate, as ssl.SSLSocket.getpeercert() returns it.
    transport = websocket.transport
    assert isinstance(transport, TLSTransport)
    certificate = transport.ssl_object.getpeercert() or {}
    # Its subject is a tuple of relative distinguished names, each a tuple of pairs.
    names = [
        attribute[1]
        for rdn in certificate.get("subject", ())
        for attribute in rdn
        if attribute[0] == "commonName"
    ]
    websocket.send(f"you are {', '.join(names)}")
