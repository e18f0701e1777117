"""`rtstyle video`: decode with PyAV, stylize with the engine, encode, keep every audio stream.

Three stages run at once, joined by small queues (source -> engine -> sink):

    reader thread   demux + decode video frames; audio packets go straight to the writer
    main thread     StyleEngine.stylize_stream: frames in order (on the CPU, several at once)
    writer thread   encode video, copy (or re-encode) audio, mux

FFmpeg's decoders and encoders and ONNX Runtime all release the GIL, so the
stages overlap and the whole runs close to the net's own speed. Timestamps are
carried from input to output frame by frame, so variable frame rate stays in
sync. The output is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import collections
import heapq
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace
from tqdm import tqdm

from realtime_style.engine import StyleEngine
from realtime_style.errors import UserError
from realtime_style.files import atomic_output, check_input_file, check_output_path
from realtime_style.temporal import DEFAULT_STRENGTH, Stabilizer

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
# Audio codecs each container takes as they are; any other audio is re-encoded to the second entry.
AUDIO_RULES = {
    ".mp4": ({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}, "aac"),
    ".m4v": ({"aac", "mp3", "ac3", "eac3", "alac"}, "aac"),
    ".mov": ({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"}, "aac"),
    ".webm": ({"opus", "vorbis"}, "libopus"),
    ".mkv": (None, "aac"),  # None: Matroska takes any codec FFmpeg knows
    ".avi": ({"mp3", "ac3", "pcm_s16le", "aac"}, "libmp3lame"),
}
DEFAULT_VIDEO_CODEC = {".webm": "libvpx-vp9"}
QUEUE_FRAMES = 8
_END = object()

# YUV <-> RGB. A player reads a file's pixels with the matrix its stream is tagged with, and where
# there is no tag (most files) assumes BT.709 for HD (mpv: 1280 wide or more, or over 576 lines)
# and BT.601 below. FFmpeg's converter assumes BT.601 for every untagged frame, and an untagged
# BT.601 output of an HD input showed in players with its reds and greens shifted (2026-12-03:
# 5.0 levels on average and 34 at the 99th percentile on smpte-2997.mp4, tagged BT.709; docs/video.md).
# So frames are read as players read them, and outputs are written in the input's matrix and
# tagged with it: nothing is left to guessing.
# Keys: AVColorSpace, the numbers streams are tagged with (1 BT.709, 5 BT.470BG and 6 SMPTE 170M are
# BT.601's matrix, 7 SMPTE 240M, 4 FCC, 9/10 BT.2020).
_MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
             7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
_BT709, _SMPTE170M = 1, 6


@dataclass
class VideoOptions:
    codec: str | None = None      # default: libx264 (libvpx-vp9 for .webm)
    crf: int = 18
    preset: str = "medium"
    start: float = 0.0            # seconds
    duration: float | None = None
    overwrite: bool = False
    stabilize: float = DEFAULT_STRENGTH  # run-time flicker reduction (realtime_style.temporal.Stabilizer); 0 = off


@dataclass
class VideoReport:
    frames: int = 0
    bad_packets: int = 0
    audio_streams: list[str] = field(default_factory=list)  # "copied aac", "re-encoded vorbis -> aac"
    width: int = 0
    height: int = 0
    seconds: float = 0.0


@dataclass
class _Probe:
    width: int
    height: int
    rate: Fraction
    expected_frames: int
    matrix: int  # the YUV matrix of the first frame (AVColorSpace): the output is written in it


@dataclass
class VideoJob:
    source: Path
    output: Path
    options: VideoOptions
    probe: _Probe


def prepare_video(input_path: str | os.PathLike, output_path: str | os.PathLike,
                  options: VideoOptions | None = None) -> VideoJob:
    """Check the input, the output and the options before any model is loaded or file written."""
    options = options or VideoOptions()
    source = check_input_file(input_path, "a video")
    output = check_output_path(output_path, (source,), options.overwrite)
    suffix = output.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"{output}: unknown video type {suffix or '(none)'}; use one of {', '.join(VIDEO_SUFFIXES)}")
    if options.start < 0 or (options.duration is not None and options.duration <= 0):
        raise UserError("--start must be 0 or more and --duration above 0")
    if not 0.0 <= options.stabilize < 1.0:
        raise UserError(f"--stabilize must be at least 0 and below 1, not {options.stabilize}")
    return VideoJob(source, output, options, _probe(source, options))


def stylize_video(job: VideoJob, engine: StyleEngine, progress: bool = True) -> VideoReport:
    """Run a prepared job; the output appears only once it is complete."""
    with atomic_output(job.output) as tmp:
        return _transcode(job.source, tmp, engine, job.options, job.probe, progress)


def _open_input(source: Path) -> av.container.InputContainer:
    try:
        return av.open(str(source), "r")
    except av.FFmpegError as exc:
        raise UserError(f"{source}: not a video FFmpeg can read ({_reason(exc)})") from None


def _probe(source: Path, options: VideoOptions) -> _Probe:
    """Open the input once, up front, so a bad file fails before any output exists."""
    with _open_input(source) as container:
        if not container.streams.video:
            raise UserError(f"{source}: has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        first = next((item for kind, item in _window(container, [stream], options, _Counter()) if kind == "video"),
                     None)
        if first is None:
            raise UserError(f"{source}: no video frames could be decoded"
                            + (" in the --start/--duration window" if options.start or options.duration else ""))
        width, height = (first.width, first.height) if _quarter_turns(first) % 2 == 0 else (first.height, first.width)
        seconds = float(stream.duration * stream.time_base) if stream.duration else (
            container.duration / av.time_base if container.duration else 0.0)
        seconds = max(0.0, seconds - options.start)
        if options.duration is not None:
            seconds = min(seconds, options.duration)
        expected = round(seconds * rate) if seconds else (stream.frames or 0)
        return _Probe(width, height, Fraction(rate), expected, yuv_matrix(first.colorspace, first.width, first.height))


def yuv_matrix(tag: int | None, width: int, height: int) -> int:
    """The AVColorSpace a frame's YUV pixels are in: its tag, or what players assume without one."""
    if tag is not None and int(tag) in _MATRICES:
        return int(tag)
    return _BT709 if width >= 1280 or height > 576 else _SMPTE170M


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame, in the colours a player shows it with."""
    matrix = yuv_matrix(frame.colorspace, frame.width, frame.height)
    return frame.to_ndarray(format="rgb24", src_colorspace=_MATRICES[matrix])


def rgb_to_frame(rgb: np.ndarray, matrix: int) -> av.VideoFrame:
    """An 8-bit 4:2:0 frame of ``rgb`` in the YUV ``matrix`` (AVColorSpace), limited range, tagged so."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace=_MATRICES[matrix], dst_color_range=ColorRange.MPEG)


def tag_colors(stream, matrix: int, source=None) -> None:
    """Tag an output stream with the matrix its frames are written in (and the source's primaries and
    transfer, where the source names them), so players need not guess."""
    context = stream.codec_context
    # BT.2020's constant-luminance variant (10) is converted with its non-constant matrix (9), so say 9.
    context.colorspace, context.color_range = (9 if matrix == 10 else matrix), int(ColorRange.MPEG)
    if source is not None:
        for name in ("color_primaries", "color_trc"):
            value = getattr(source.codec_context, name)
            if value not in (None, 0, 2):  # 0: reserved, 2: unspecified
                setattr(context, name, value)


class _Counter:
    def __init__(self):
        self.bad_packets = 0


def _window(container, streams: list, options: VideoOptions, counter: _Counter):
    """("video", frame) and ("audio", packet) pairs inside the --start/--duration window.

    Undecodable video packets are counted and skipped; a damaged container ends
    the stream with what decoded so far.
    """
    if options.start > 0:
        container.seek(int(options.start * av.time_base), backward=True, any_frame=False)
    end = options.start + options.duration if options.duration is not None else None

    def inside(t: float) -> bool:
        return t >= options.start - 1e-6 and (end is None or t < end - 1e-6)

    def video_in_window(frames: list):
        """Yield the frames inside the window; return True once past its end."""
        for frame in frames:
            if end is not None and frame.time >= end - 1e-6:
                return True
            if inside(frame.time):
                yield "video", frame
        return False

    reorder = _Reorder()
    packets = container.demux(*streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            packet = None
        except av.FFmpegError:
            counter.bad_packets += 1
            packet = None
        if packet is None:
            yield from video_in_window(reorder.flush())
            return
        if packet.stream.type == "audio":
            if packet.pts is not None and packet.size and inside(float(packet.pts * packet.time_base)):
                yield "audio", packet
            continue
        try:
            frames = packet.decode()
        except av.FFmpegError:
            counter.bad_packets += 1
            continue
        ready = [r for frame in frames if frame.pts is not None for r in reorder.push(frame)]
        if (yield from video_in_window(ready)):
            return


class _Reorder:
    """Give decoded frames their timestamps in rising order, like a player shows them.

    Some files stamp B-frames with their decode time as pts (the shared box.mp4 does), so
    frames leave the decoder in display order but with pts out of order. The set of pts is
    still right: holding a few frames and handing out the smallest pts first restores it.
    Files with sane timestamps come through unchanged.
    """

    DEPTH = 16  # more than any B-frame reordering delay

    def __init__(self):
        self.heap: list[int] = []
        self.pending: collections.deque = collections.deque()

    def push(self, frame) -> list:
        heapq.heappush(self.heap, frame.pts)
        self.pending.append(frame)
        return [self._pop()] if len(self.pending) > self.DEPTH else []

    def flush(self) -> list:
        return [self._pop() for _ in range(len(self.pending))]

    def _pop(self):
        frame = self.pending.popleft()
        frame.pts = heapq.heappop(self.heap)
        return frame


def _transcode(source: Path, target: Path, engine: StyleEngine, options: VideoOptions, probe: _Probe,
               progress: bool) -> VideoReport:
    report = VideoReport(width=probe.width - probe.width % 2, height=probe.height - probe.height % 2)
    counter = _Counter()
    stop = threading.Event()
    to_engine: queue.Queue = queue.Queue(QUEUE_FRAMES)
    to_writer: queue.Queue = queue.Queue(QUEUE_FRAMES * 4)
    errors: list[BaseException] = []

    def run(stage, *args) -> None:
        try:
            stage(*args)
        except BaseException as exc:  # handed to the main thread, which raises it
            errors.append(exc)
            stop.set()

    with _open_input(source) as inp, av.open(str(target), "w") as out:
        v_in = inp.streams.video[0]
        v_in.thread_type = "AUTO"
        v_out = _add_video_stream(out, v_in, options, probe, report, target.suffix.lower())
        audio = [_add_audio_stream(out, a_in, target.suffix.lower(), report) for a_in in inp.streams.audio]
        out.start_encoding()  # open every encoder and write the header before any thread muxes
        stabilizer = Stabilizer(options.stabilize, device=engine.blend_device) if options.stabilize else None
        reader = threading.Thread(target=run, args=(_read, inp, v_in, audio, options, stabilizer, counter,
                                                    to_engine, to_writer, stop), name="rtstyle-reader", daemon=True)
        writer = threading.Thread(target=run, args=(_write, out, v_out, probe.matrix, audio, to_writer, stop),
                                  name="rtstyle-writer", daemon=True)
        bar = tqdm(total=probe.expected_frames or None, unit="frame", disable=not progress, dynamic_ncols=True,
                   desc=engine.name)
        began = time.perf_counter()
        try:  # the threads start inside it: a Ctrl-C at any moment stops them before the containers close
            reader.start()
            writer.start()
            for rgb, (pts, time_base, motion), styled in engine.stylize_stream(_frames_until_end(to_engine, stop)):
                if stabilizer:
                    styled = stabilizer.blend(styled, motion)  # the flow was tracked by the reader
                styled = styled[: report.height, : report.width]
                _put(to_writer, ("video", styled, pts, time_base), stop)
                report.frames += 1
                bar.update(1)
            _put(to_writer, _END, stop)
            writer.join()
        finally:
            stop.set()  # on Ctrl-C or an error: every stage gives up within 0.1 s
            bar.close()
            for thread in (reader, writer):
                if thread.ident is not None:  # started
                    thread.join()
        if errors:
            raise errors[0]
        if report.frames == 0:
            raise UserError(f"{source}: no video frames could be decoded")
        report.seconds = time.perf_counter() - began
    report.bad_packets = counter.bad_packets
    return report


def _frames_until_end(to_engine: queue.Queue, stop: threading.Event) -> Iterator[tuple[np.ndarray, tuple]]:
    """The reader's frames as (rgb, (pts, time_base, motion)) pairs, for StyleEngine.stylize_stream."""
    while (item := _get(to_engine, stop)) is not _END:
        rgb, *tag = item
        yield rgb, tuple(tag)


def _add_video_stream(out, v_in, options: VideoOptions, probe: _Probe, report: VideoReport, suffix: str):
    codec = options.codec or DEFAULT_VIDEO_CODEC.get(suffix, "libx264")
    try:
        stream = out.add_stream(codec, rate=probe.rate)
    except (av.FFmpegError, ValueError) as exc:
        raise UserError(f"--codec {codec}: not an encoder this FFmpeg has ({_reason(exc)})") from None
    stream.width, stream.height = report.width, report.height
    stream.pix_fmt = "yuv420p"
    stream.time_base = v_in.time_base
    stream.codec_context.time_base = v_in.time_base
    tag_colors(stream, probe.matrix, v_in)
    if codec in ("libx264", "libx265"):
        stream.options = {"crf": str(options.crf), "preset": options.preset}
    elif codec.startswith("libvpx"):
        stream.options = {"crf": str(options.crf + 13), "b": "0", "deadline": "good", "cpu-used": "4",
                          "row-mt": "1"}
    return stream


@dataclass
class _AudioTrack:
    index: int
    out_stream: object
    copy: bool


def _add_audio_stream(out, a_in, suffix: str, report: VideoReport) -> _AudioTrack:
    accepted, fallback = AUDIO_RULES.get(suffix, (None, "aac"))
    name = a_in.codec_context.codec.canonical_name
    if accepted is None or name in accepted:
        report.audio_streams.append(f"copied {name}")
        return _AudioTrack(a_in.index, out.add_stream_from_template(a_in), copy=True)
    stream = out.add_stream(fallback, rate=48000 if fallback == "libopus" else a_in.codec_context.sample_rate)
    stream.layout = "mono" if a_in.codec_context.channels == 1 else "stereo"
    stream.format = stream.codec_context.codec.audio_formats[0].name  # the encoder's preferred sample format
    report.audio_streams.append(f"re-encoded {name} -> {fallback}")
    return _AudioTrack(a_in.index, stream, copy=False)


def _read(inp, v_in, audio: list[_AudioTrack], options: VideoOptions, stabilizer: Stabilizer | None,
          counter: _Counter, to_engine: queue.Queue, to_writer: queue.Queue, stop: threading.Event) -> None:
    """Video frames (upright RGB, and the stabilizer's motion) to the engine, audio to the writer,
    timestamps shifted by --start."""
    tracks = {t.index: t for t in audio}
    try:
        _read_window(inp, v_in, tracks, options, stabilizer, counter, to_engine, to_writer, stop)
    finally:
        _put(to_engine, _END, stop)


def _read_window(inp, v_in, tracks: dict, options: VideoOptions, stabilizer: Stabilizer | None, counter: _Counter,
                 to_engine: queue.Queue, to_writer: queue.Queue, stop: threading.Event) -> None:
    for kind, item in _window(inp, [v_in, *(inp.streams[i] for i in tracks)], options, counter):
        if stop.is_set():
            return
        shift = round(Fraction(options.start) / item.time_base) if options.start else 0
        if kind == "video":
            rgb = frame_to_rgb(item)
            turns = _quarter_turns(item)
            if turns:
                rgb = np.ascontiguousarray(np.rot90(rgb, turns))
            motion = stabilizer.track(rgb) if stabilizer else None
            _put(to_engine, (rgb, item.pts - shift, item.time_base, motion), stop)
            continue
        track = tracks[item.stream.index]
        if track.copy:
            item.pts -= shift
            if item.dts is not None:
                item.dts -= shift
            _put(to_writer, ("audio", track, item), stop)
            continue
        try:
            frames = item.decode()
        except av.FFmpegError:
            continue
        for frame in frames:
            frame.pts = None  # the encoder numbers re-encoded audio continuously
            _put(to_writer, ("audio", track, frame), stop)


def _write(out, v_out, matrix: int, audio: list[_AudioTrack], to_writer: queue.Queue,
           stop: threading.Event) -> None:
    last_pts = None
    while (item := _get(to_writer, stop)) is not _END:
        if item[0] == "video":
            _, rgb, pts, time_base = item
            if last_pts is not None and pts <= last_pts:  # a duplicate timestamp would stop the muxer
                pts = last_pts + 1
            last_pts = pts
            frame = rgb_to_frame(rgb, matrix)
            frame.pts, frame.time_base = pts, time_base
            out.mux(v_out.encode(frame))
        else:
            _, track, payload = item
            if track.copy:
                payload.stream = track.out_stream
                out.mux(payload)
            else:
                out.mux(track.out_stream.encode(payload))
    if stop.is_set():
        return
    out.mux(v_out.encode(None))
    for track in audio:
        if not track.copy:
            out.mux(track.out_stream.encode(None))


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that make the frame upright (its display matrix, as players apply it)."""
    return round((frame.rotation or 0) / 90) % 4


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    """Put without blocking forever: give up once the pipeline is stopping."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                return


def _get(q: queue.Queue, stop: threading.Event):
    """Get, or _END once the pipeline is stopping."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    return _END


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0][:160]
