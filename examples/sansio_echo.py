"""Echo one message with the sans-I/O core: bytes in, events out, bytes to send. No socket."""

from syncws.core.frames import Frame, Opcode
from syncws.core.protocol import Protocol, Side

server = Protocol(Side.SERVER)

# The bytes a client would put on the wire: a text frame, masked as RFC 6455 requires.
server.receive_data(Frame(Opcode.TEXT, b"hello").serialize(mask=True))

for event in server.events_received():
    # Events are frames here; a handshake protocol would also report a Request or a Response.
    if isinstance(event, Frame):
        print("received", event.opcode.name, event.data)
        if event.opcode is Opcode.TEXT:
            server.send_text(event.data)

# The bytes to write to the client: an unmasked text frame carrying the same payload.
print("to send", b"".join(server.data_to_send()))
