def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes: ...
def encode_frame(
    head: int, data: bytes | bytearray | memoryview, mask_key: bytes | None = None, /
) -> bytes: ...
def parse_frame(
    buffer: bytearray,
    start: int,
    end: int,
    mask: bool,
    max_size: int | None,
    allow_rsv: bool,
    /,
) -> tuple[int, int, int, bytes | None, bytes | None] | None: ...
def parse_messages(
    buffer: bytearray, start: int, end: int, mask: bool, max_size: int | None, /
) -> tuple[bytes, list[bytes], int]: ...
