"""livekit's audio processing called without a protobuf request built per 10 ms frame: the one place
that leans on livekit's private FFI client (``livekit.rtc._ffi_client``, ``livekit.rtc._proto``).

``rtc.AudioProcessingModule.process_stream`` and ``process_reverse_stream`` build an ``FfiRequest``
for every frame, serialise it, call the FFI library, parse its response and drop the response's
handle: ~35 us a call on the development VM, ~12 us of it the FFI call itself (bench/README.md). A
request for one frame buffer never changes (the module's handle, the buffer's address and size, the
rate, the channels), so :class:`FrameCall` serialises it once and then only calls, parses and drops,
as livekit's own client does. Four calls every 20 ms block: ~90 us a block saved, the same output
bit for bit.

Checked against livekit 1.2.1 (:data:`TESTED_WITH`); ``tests/audio/test_livekit_adaptation.py``
fails when livekit moves, and compares the output with the module's own calls.
"""

from __future__ import annotations

import ctypes
from typing import Any

TESTED_WITH = {"livekit": "1.2.1"}
CALLS = ("apm_process_stream", "apm_process_reverse_stream")


class FrameCall:
    """One of the module's per-frame calls, ``call`` (one of :data:`CALLS`), on ``buffer``: int16
    samples that stay where they are, processed in place each time the object is called.

    Raises ValueError for a buffer that is not a whole number of 10 ms frames (the library aborts
    the process on one), and RuntimeError, when called, with the module's own error.
    """

    def __init__(self, apm: Any, call: str, buffer: bytearray, rate: int, channels: int = 1) -> None:
        from livekit.rtc._ffi_client import INVALID_HANDLE, FfiClient
        from livekit.rtc._proto import ffi_pb2
        from livekit.rtc._utils import get_address

        if call not in CALLS:
            raise ValueError(f"{call!r} is not one of the module's frame calls {CALLS}")
        frame_bytes = rate // 100 * channels * 2
        if not buffer or len(buffer) % frame_bytes:
            raise ValueError(f"{len(buffer)} bytes are not whole 10 ms frames of {frame_bytes} bytes")
        request = ffi_pb2.FfiRequest()
        fields = getattr(request, call)
        fields.apm_handle = apm._ffi_handle.handle
        fields.data_ptr = get_address(buffer)
        fields.size = len(buffer)
        fields.sample_rate = rate
        fields.num_channels = channels
        self.call = call
        # The library reads the request, and the request points at the samples: both kept alive here,
        # with the module whose handle it names.
        self._apm, self._buffer = apm, buffer
        self._request = request.SerializeToString()
        self._pointer = ctypes.cast(ctypes.c_char_p(self._request), ctypes.POINTER(ctypes.c_ubyte))
        self._library = FfiClient.instance._ffi_lib
        self._invalid = INVALID_HANDLE
        self._response_type = ffi_pb2.FfiResponse
        self._response = ctypes.POINTER(ctypes.c_ubyte)()
        self._length = ctypes.c_size_t()
        self._response_ref, self._length_ref = ctypes.byref(self._response), ctypes.byref(self._length)

    def __call__(self) -> None:
        handle = self._library.livekit_ffi_request(
            self._pointer, len(self._request), self._response_ref, self._length_ref
        )
        if handle == self._invalid:
            raise RuntimeError(f"livekit's FFI refused {self.call}")
        try:
            response = self._response_type()
            response.ParseFromString(ctypes.string_at(self._response, self._length.value))
        finally:
            self._library.livekit_ffi_drop_handle(handle)
        error = getattr(response, self.call).error
        if error:
            raise RuntimeError(error)
