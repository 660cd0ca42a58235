"""Whether an audio file was cut off, from what its container records about its own length.

libsndfile trusts a file's size: a cut-off WAV or Ogg file reads as a shorter song, and a
cut-off FLAC or MP3 claims its full length and decodes less. Each container records a fact
that tells: a WAV's ``data`` chunk size, an Ogg stream's page sizes and checksums, a FLAC's
STREAMINFO length, an MP3's Xing/Info header. :func:`hitrank.audio.info` asks
:func:`truncation` (and :func:`mp3_truncation`, before libsndfile opens an MP3) before
anything is decoded. A file that records no such fact (an MP3 without a Xing header, a
compressed WAV, a FLAC of unknown length) is not judged.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import soundfile as sf

#: libsndfile's frame count for a file whose header gives no length (a streamed FLAC, whose
#: STREAMINFO says 0 samples): not a claim that can be checked
UNKNOWN_FRAMES = 2**63 - 1


def truncation(path: str | os.PathLike, f: sf.SoundFile) -> str | None:
    """Why an open audio file is cut off, judged from a fact its container records, or None.

    libsndfile reads a cut-off file as a shorter song (WAV, Ogg), or claims the full length
    and decodes less (FLAC). What is judged, by ``f.format``:

    - WAV (fixed-size encodings): the ``data`` chunk's declared size, :func:`wav_declared_frames`;
    - OGG (Vorbis, Opus): the last pages are whole, :func:`ogg_truncation`;
    - FLAC: the last frames STREAMINFO claims decode, :func:`last_frame_decodes`.

    MP3 is judged by :func:`info` before the file is opened (:func:`mp3_xing_stream`). A
    compressed WAV (ADPCM) and a FLAC of unknown length record no such fact: not judged.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    f : soundfile.SoundFile
        The same file, open for reading, with a valid rate and channel count (its read
        position may move).

    Returns
    -------
    str or None
        The reason, e.g. ``"the last Ogg page is cut off (...)"``; None when the file is whole
        or cannot be judged.
    """
    frames = int(f.frames)
    if f.format in ("WAV", "WAVEX") and f.subtype in FIXED_SIZE_SUBTYPES:
        declared = wav_declared_frames(path)
        if declared is not None and declared > frames + 1:  # libsndfile reads what is there
            return f"header claims {declared} frames, only {frames} present"
    elif f.format == "OGG":
        cut = ogg_truncation(path)
        if cut:
            return f"{cut}; only {frames} frames ({frames / f.samplerate:.1f} s) readable"
    elif f.format == "FLAC" and 0 < frames < UNKNOWN_FRAMES and not last_frame_decodes(f):
        return (f"the FLAC header (STREAMINFO) claims {frames} frames "
                f"({frames / f.samplerate:.1f} s) and the last of them cannot be decoded")
    return None


def mp3_truncation(path: Path) -> str | None:
    """Why an MP3 file is cut off (fewer bytes than its Xing header records), or None."""
    xing = mp3_xing_stream(path)
    if xing is not None:
        start, declared = xing
        present = os.path.getsize(path) - start
        if present < declared:
            return f"its Xing header claims {declared} bytes of MPEG audio, only {present} present"
    return None


#: WAV encodings with one fixed-size block per frame (compressed ones, e.g. ADPCM, are not)
FIXED_SIZE_SUBTYPES = ("PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW")
#: a RIFF data-chunk size of 0, or this size or larger, is a placeholder that streaming
#: recorders write (0x7FFFFFFF, 0xFFFFFFFF and near), not a length (a WAV song is far smaller)
RIFF_PLACEHOLDER_SIZE = 0x7FFF0000


def wav_declared_frames(path: str | os.PathLike) -> int | None:
    """The frames a WAV file's ``data`` chunk header declares (its size over the ``fmt ``
    chunk's block size), or None when the header does not say (an unknown size, no ``fmt ``
    before ``data``, not RIFF). libsndfile trusts the file's length instead, so a cut-off
    download reads as a shorter song: comparing the two finds it."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if cid == b"fmt ":
                fmt = f.read(size)
                block = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
                f.seek(size % 2, os.SEEK_CUR)
            elif cid == b"data":
                return size // block if block and 0 < size < RIFF_PLACEHOLDER_SIZE else None
            else:
                f.seek(size + size % 2, os.SEEK_CUR)


#: Ogg page layout (RFC 3533): byte offsets in the 27-byte fixed header, which the segment
#: (lacing) table follows; the page body's length is the sum of that table's entries
OGG_CAPTURE = b"OggS"  # capture pattern that starts every page
OGG_PAGE_START = OGG_CAPTURE + b"\0"  # the capture pattern and stream_structure_version 0
OGG_CRC_AT = 22  # the page's CRC-32, 4 bytes little-endian, computed with these bytes zeroed
OGG_SEGMENTS_AT = 26  # page_segments: entries in the segment table
OGG_HEADER_BYTES = 27  # the fixed part of a page header
OGG_MAX_PAGE_BYTES = OGG_HEADER_BYTES + 255 + 255 * 255  # 255 segments of <= 255 bytes
#: bytes read from a file's end: room for a cut-off page and the whole page before it
OGG_TAIL_BYTES = 2 * OGG_MAX_PAGE_BYTES
#: byte values with their bits in reverse order (Ogg's CRC is zlib's, bit-reflected)
_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_truncation(path: str | os.PathLike) -> str | None:
    """Why an Ogg file (Vorbis, Opus, ...) is cut off, or None when it ends as a whole one does.

    libsndfile takes an Ogg file's length from its last page, so a cut-off one reads as a
    shorter song. A cut shows as a last page whose header or body runs past the end of the file,
    or (when bytes such as a tag were appended after the cut) as a page whose checksum does not
    match. A whole last page without the end-of-stream flag is *not* judged: recorders and
    exporters (Android's, MuseScore's, stream rips) write playable files without it, and a cut
    that falls exactly between two pages cannot be told from them.
    Only the file's last :data:`OGG_TAIL_BYTES` are read. The walk starts at the first page
    there whose checksum matches (so ``"OggS"`` inside packet data is never taken for a page),
    or at the file's first byte when the file is that short, and goes on page by page, each
    page starting where the previous one ends; bytes after a page that do not start one (a
    tag, say) are skipped to the next checksummed page, as decoders do, or to the end.

    Parameters
    ----------
    path : str or os.PathLike
        The file; only its end is read.

    Returns
    -------
    str or None
        ``"the last Ogg page is cut off (...)"``, ``"the last Ogg page's header is cut off
        (...)"`` or ``"the Ogg page at byte N is cut off or damaged (...)"``; None when every
        page from the first whole one found to the end is whole, or when no whole page is
        found to judge from.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - OGG_TAIL_BYTES))
        tail = f.read()
    offset = size - len(tail)  # of tail[0] in the file, for the messages
    # a page starts at the file's first byte; further on, only a checksum tells one apart
    # from "OggS" inside packet data
    pos = 0 if offset == 0 and tail.startswith(OGG_PAGE_START) else _next_ogg_page(tail, 0)
    if pos is None:
        return None
    while pos < len(tail):
        if not OGG_PAGE_START.startswith(tail[pos: pos + len(OGG_PAGE_START)]):
            pos = _next_ogg_page(tail, pos + 1)  # not a page (damage, a tag): resynchronise
            if pos is None:
                break
            continue
        # a page starts where the previous one ended: the file must hold all of it
        end = _ogg_page_end(tail, pos)
        if end is None:
            return (f"the last Ogg page's header is cut off ({len(tail) - pos} bytes present "
                    f"at byte {offset + pos})")
        if end > len(tail):
            return (f"the last Ogg page is cut off (at byte {offset + pos}, "
                    f"{len(tail) - pos} of its {end - pos} bytes present)")
        if not _is_ogg_page(tail, pos):
            return (f"the Ogg page at byte {offset + pos} is cut off or damaged (its checksum "
                    f"does not match; bytes appended after a cut?)")
        pos = end
    return None


def _ogg_page_end(buf: bytes, at: int) -> int | None:
    """Where the page whose header starts at ``at`` ends (maybe past ``len(buf)``), or None
    when its header runs past the end of ``buf``."""
    table = at + OGG_HEADER_BYTES
    if table > len(buf) or table + buf[at + OGG_SEGMENTS_AT] > len(buf):
        return None
    n = buf[at + OGG_SEGMENTS_AT]
    return table + n + sum(buf[table: table + n])


def _is_ogg_page(buf: bytes, at: int) -> bool:
    """Whether a whole Ogg page whose checksum matches starts at ``at``."""
    if not buf.startswith(OGG_PAGE_START, at):
        return False
    end = _ogg_page_end(buf, at)
    if end is None or end > len(buf):
        return False
    stored = int.from_bytes(buf[at + OGG_CRC_AT: at + OGG_CRC_AT + 4], "little")
    return stored == _ogg_crc(buf[at: at + OGG_CRC_AT] + bytes(4) + buf[at + OGG_CRC_AT + 4: end])


def _next_ogg_page(buf: bytes, start: int) -> int | None:
    """The first offset from ``start`` where a whole, checksummed Ogg page starts, or None."""
    at = buf.find(OGG_CAPTURE, start)
    while at >= 0 and not _is_ogg_page(buf, at):
        at = buf.find(OGG_CAPTURE, at + 1)
    return None if at < 0 else at


def _ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 of ``data`` (polynomial 0x04C11DB7, most significant bit first, initial
    value 0, no final XOR), with zlib's CRC-32 doing the work at C speed: zlib uses the same
    polynomial bit-reflected, starting from all ones and inverting its result; XOR-ing its CRC
    of as many zero bytes cancels both (a CRC is affine in its initial value), and reversing
    the bits of every input byte and of the result undoes the reflection."""
    reflected = zlib.crc32(data.translate(_BIT_REVERSED)) ^ zlib.crc32(bytes(len(data)))
    return int(f"{reflected:032b}"[::-1], 2)


#: frames decoded at a FLAC file's end: at least one block of the largest size FLAC allows
FLAC_CHECK_FRAMES = 65536


def last_frame_decodes(f: sf.SoundFile) -> bool:
    """Whether the last frames an open file's header claims can be decoded.

    A FLAC file's STREAMINFO header records its length, and libsndfile reports it even when
    the file was cut off; seeking to :data:`FLAC_CHECK_FRAMES` before the end (a bisection over
    the file, a few frames decoded) and decoding to the end falls short then, to the byte.
    (Seeking to the very last frame fails in libsndfile for whole files that carry an ID3v2
    tag in front, hence the longer read.) Not used for MP3: mpg123 prints decoder warnings
    when it starts decoding mid-stream.

    Parameters
    ----------
    f : soundfile.SoundFile
        An open file with ``f.frames > 0``; its read position moves.

    Returns
    -------
    bool
        True when every frame from ``f.frames - FLAC_CHECK_FRAMES`` to the end decodes.
    """
    start = max(0, f.frames - FLAC_CHECK_FRAMES)
    try:
        f.seek(start)
        return len(f.read(f.frames - start, dtype="float32")) == f.frames - start
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return False


#: an ID3v2 tag (before an MP3 stream): "ID3", version (2 B), flags (1 B), then its size
#: without this header in 4 bytes of 7 bits each
ID3V2_MAGIC = b"ID3"
ID3V2_HEADER_BYTES = 10
ID3V2_FLAGS_AT, ID3V2_SIZE_AT = 5, 6
ID3V2_FOOTER_FLAG = 0x10  # a 10-byte footer follows the tag
#: bytes searched for the first MPEG audio frame after the ID3v2 tags
MP3_SYNC_SEARCH_BYTES = 4096
#: MPEG audio frame header (4 bytes): 11 sync bits, version (2 bits: 3 MPEG-1, 2 MPEG-2,
#: 0 MPEG-2.5, 1 reserved), layer (2 bits: 1 Layer III, 0 reserved), protection bit (0: a
#: 2-byte CRC follows), bit-rate index (4 bits, 15 invalid), sample-rate index (2 bits, 3
#: reserved), padding, private bit, channel mode (2 bits: 3 mono), ...
MPEG_HEADER_BYTES = 4
MPEG_CRC_BYTES = 2
MPEG_VERSION_1, MPEG_VERSION_RESERVED = 3, 1
MPEG_LAYER_III, MPEG_LAYER_RESERVED = 1, 0
MPEG_BITRATE_INVALID, MPEG_RATE_RESERVED = 15, 3
MPEG_MONO = 3
#: Layer III side-information bytes, which a Xing/Info header follows, by (MPEG-1, mono)
MPEG_SIDE_INFO_BYTES = {(True, False): 32, (True, True): 17, (False, False): 17, (False, True): 9}
XING_IDS = (b"Xing", b"Info")  # Info: a constant-bit-rate file's Xing header
XING_FRAMES_FLAG = 0x1  # the header records the number of frames (4 bytes, after the flags)
XING_BYTES_FLAG = 0x2  # the header records the stream size in bytes (4 bytes, after that)


def mp3_xing_stream(path: str | os.PathLike) -> tuple[int, int] | None:
    """Where an MP3's audio stream starts and the size its Xing/Info header records.

    LAME, FFmpeg and libsndfile write a Xing (or Info) header in the first frame, with the
    number of frames (libsndfile's length) and the stream's size in bytes from that frame on,
    leading ID3v2 tags excluded (as mpg123 reads it). A file smaller than that was cut off.

    Parameters
    ----------
    path : str or os.PathLike
        Any file; its ID3v2 tags are skipped, then at most 4 kB are read.

    Returns
    -------
    tuple of int or None
        ``(start, size)``: the byte offset of the first audio frame and the size in bytes the
        header records; None when the file does not start as an MP3 (an ID3v2 tag or an MPEG
        frame), or has no Xing/Info header, or one that omits the size: then the file records
        nothing its length can be checked against.
    """
    with open(path, "rb") as f:
        start = 0
        head = f.read(ID3V2_HEADER_BYTES)
        while len(head) == ID3V2_HEADER_BYTES and head.startswith(ID3V2_MAGIC):
            size = 0
            for byte in head[ID3V2_SIZE_AT:]:  # "synchsafe": 7 bits a byte, so no false sync
                size = size << 7 | byte & 0x7F
            footer = ID3V2_HEADER_BYTES if head[ID3V2_FLAGS_AT] & ID3V2_FOOTER_FLAG else 0
            start += ID3V2_HEADER_BYTES + size + footer
            f.seek(start)
            head = f.read(ID3V2_HEADER_BYTES)
        if start == 0 and _mpeg_header(head) is None:
            return None  # neither an ID3v2 tag nor an MPEG frame: not an MP3 file
        f.seek(start)
        buf = f.read(MP3_SYNC_SEARCH_BYTES)
    at = buf.find(0xFF)
    while at >= 0 and _mpeg_header(buf[at:]) is None:
        at = buf.find(0xFF, at + 1)
    if at < 0:
        return None
    mpeg1, layer3, protected, mono = _mpeg_header(buf[at:])
    if not layer3:
        return None
    xing = (at + MPEG_HEADER_BYTES + (MPEG_CRC_BYTES if protected else 0)
            + MPEG_SIDE_INFO_BYTES[(mpeg1, mono)])
    if buf[xing: xing + 4] not in XING_IDS:
        return None
    flags = int.from_bytes(buf[xing + 4: xing + 8], "big")
    size_at = xing + 8 + (4 if flags & XING_FRAMES_FLAG else 0)
    if not flags & XING_BYTES_FLAG or len(buf) < size_at + 4:
        return None
    return start + at, int.from_bytes(buf[size_at: size_at + 4], "big")


def _mpeg_header(h: bytes) -> tuple[bool, bool, bool, bool] | None:
    """``(MPEG-1, Layer III, CRC-protected, mono)`` when ``h`` starts with a valid MPEG audio
    frame header (sync bits set, no reserved or invalid field), else None."""
    if len(h) < MPEG_HEADER_BYTES or h[0] != 0xFF or h[1] >> 5 != 0b111:
        return None
    version, layer, bitrate, rate = (h[1] >> 3) & 3, (h[1] >> 1) & 3, h[2] >> 4, (h[2] >> 2) & 3
    if (version == MPEG_VERSION_RESERVED or layer == MPEG_LAYER_RESERVED
            or bitrate == MPEG_BITRATE_INVALID or rate == MPEG_RATE_RESERVED):
        return None
    return version == MPEG_VERSION_1, layer == MPEG_LAYER_III, not h[1] & 1, h[3] >> 6 == MPEG_MONO
