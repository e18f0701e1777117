"""`rtstyle webcam`: a live window that keeps up with the camera.

    camera thread --(one-slot buffer: newest frame only)--> main loop: engine -> view -> window
                                                                          \\-> recorder thread (PyAV)

The camera thread overwrites a single slot, so a frame the engine had no time for
is dropped, never queued: latency stays about one frame whatever the net's speed.
Everything the loop needs per frame is allocated once (the slot, the view canvas);
the style engine's own buffers live in its backend.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from realtime_style.engine import StyleEngine
from realtime_style.errors import UserError
from realtime_style.files import check_input_file, check_output_path, commit, discard, temporary_beside
from realtime_style.images import save_image
from realtime_style.temporal import Stabilizer

VIEWS = ("stylized", "split", "original")
KEYS_HELP = ("n/p or 1-9: style   +/-: strength   [/]: scale   v: view   c: colours   "
             "s: screenshot   r: record   space: pause   h: help   q/Esc: quit")
STALL_SECONDS = 5.0
# OpenCV's capture backends print warnings (and FFmpeg's decoder its complaints) straight to stderr;
# errors reach the user as one line from us instead.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
SCALE_STEPS = (0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)


@dataclass
class WebcamOptions:
    camera: int | None = None          # None: try 0, 1, 2
    source: str | None = None          # a video file or stream URL instead of a camera
    size: tuple[int, int] | None = None  # capture (width, height) asked of the camera
    mirror: bool = False
    record: str | None = None
    virtual_cam: bool = False
    window: bool = True
    fullscreen: bool = False
    max_frames: int | None = None
    stabilize: float = 0.0             # flow-guided flicker reduction (realtime_style.temporal); 0 = off
    auto_scale: bool = False           # lower the processing scale until the loop keeps up (ScaleGovernor)
    realtime_file: bool = True         # a file source plays at its own frame rate, like a camera
    stall_seconds: float = STALL_SECONDS
    screenshot_dir: str = "."


@dataclass
class WebcamSummary:
    frames_shown: int = 0
    frames_captured: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    ended_because: str = "quit"
    recording: str | None = None
    scale: float | None = None         # the processing scale at the end
    auto_scale: bool = False

    @property
    def frames_dropped(self) -> int:
        return max(0, self.frames_captured - self.frames_shown)

    @property
    def fps(self) -> float:
        return self.frames_shown / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        return float(np.percentile(self.latencies_ms, percentile)) if self.latencies_ms else 0.0

    def line(self) -> str:
        text = (f"{self.frames_shown} frames shown, {self.frames_dropped} dropped, {self.fps:.1f} fps, "
                f"latency p50 {self.latency_ms(50):.0f} ms / p95 {self.latency_ms(95):.0f} ms "
                f"({self.ended_because})")
        if self.scale is not None and (self.auto_scale or self.scale != 1.0):
            text += f", scale {self.scale:.2f}" + (" (auto)" if self.auto_scale else "")
        return text + (f"; recorded {self.recording}" if self.recording else "")


class ScaleGovernor:
    """Picks the processing scale at which the loop keeps up with the camera.

    A window that falls behind the camera drops frames and stutters; a lower scale (bigger strokes)
    keeps it fluid. Going down is quick: after three slow frames it jumps straight to the step the
    measured time predicts (net time grows with the pixels, the square of the scale). Going up is
    careful: a step is tried only when fifteen frames predict it fits with room to spare, and a step
    that proved too slow is not tried again for a while, so the picture does not keep changing.
    """

    DOWN_FRAMES, UP_FRAMES, SKIP_FRAMES = 3, 15, 2   # SKIP: the first runs at a new size warm up
    DOWN_ABOVE, UP_BELOW = 1.0, 0.7                   # of the camera's frame interval
    RETRY_AFTER = 300                                 # frames before a too-slow step is tried again

    def __init__(self, frame_interval: float, scale: float = 1.0, steps: tuple[float, ...] = SCALE_STEPS):
        self.interval = frame_interval
        self.steps = steps
        self.scale = max([s for s in steps if s <= scale + 1e-9] or [steps[0]])
        self._times: deque = deque(maxlen=self.UP_FRAMES)  # the recent frames at this scale
        self._skip = self.SKIP_FRAMES
        self._too_slow: dict[float, int] = {}  # step -> frame count when it last proved too slow
        self._frames = 0

    def update(self, seconds: float) -> float:
        """Feed one frame's processing time; returns the scale for the next frame."""
        self._frames += 1
        if self._skip:
            self._skip -= 1
            return self.scale
        self._times.append(seconds)
        recent = float(np.median(list(self._times)[-self.DOWN_FRAMES:]))
        if len(self._times) >= self.DOWN_FRAMES and recent > self.DOWN_ABOVE * self.interval:
            self._too_slow[self.scale] = self._frames
            fits = self.scale * (self.DOWN_ABOVE * 0.9 * self.interval / recent) ** 0.5
            self._change(max([s for s in self.steps if s <= fits] or [self.steps[0]]))
        elif len(self._times) == self.UP_FRAMES and self.scale < self.steps[-1]:
            up = self.steps[self.steps.index(self.scale) + 1]
            typical = float(np.median(self._times))
            slow_at = self._too_slow.get(up)
            if (typical * (up / self.scale) ** 2 < self.UP_BELOW * self.interval
                    and (slow_at is None or self._frames - slow_at > self.RETRY_AFTER)):
                self._change(up)
        return self.scale

    def _change(self, scale: float) -> None:
        if scale != self.scale:
            self.scale, self._skip = scale, self.SKIP_FRAMES
            self._times.clear()


class NewestFrame:
    """A one-slot buffer: put() replaces whatever was there; get() waits for a frame newer than the last."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._captured_at = 0.0
        self._index = -1
        self._taken = -1
        self.closed = False
        self.reason = ""

    def put(self, frame: np.ndarray, index: int) -> None:
        with self._cond:
            self._frame, self._captured_at, self._index = frame, time.perf_counter(), index
            self._cond.notify_all()

    def close(self, reason: str) -> None:
        with self._cond:
            self.closed, self.reason = True, reason
            self._cond.notify_all()

    def get(self, timeout: float) -> tuple[np.ndarray, float, int] | None:
        """The newest frame not yet taken, or None if the source ended or stalled for ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._index > self._taken or self.closed, timeout):
                return None
            if self._index <= self._taken:
                return None
            self._taken = self._index
            return self._frame, self._captured_at, self._index


class Camera:
    """Reads frames on its own thread into a NewestFrame slot."""

    def __init__(self, options: WebcamOptions):
        self.options = options
        self.capture, self.name = open_capture(options)
        self.is_file = options.source is not None and Path(options.source).is_file()
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.slot = NewestFrame()
        self.frames_read = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtstyle-camera", daemon=True)

    def start(self) -> Camera:
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.fps if self.is_file and self.options.realtime_file else 0.0
        next_time = time.perf_counter()
        while not self._stop.is_set():
            ok, bgr = self.capture.read()
            if not ok or bgr is None:
                self.slot.close("the file ended" if self.is_file else "the camera stopped sending frames")
                return
            if period:  # play a file at its own rate, as a camera would deliver it
                next_time += period
                time.sleep(max(0.0, next_time - time.perf_counter()))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if self.options.mirror:
                rgb = np.ascontiguousarray(rgb[:, ::-1])
            self.frames_read += 1
            self.slot.put(rgb, self.frames_read - 1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.capture.release()


def open_capture(options: WebcamOptions) -> tuple[cv2.VideoCapture, str]:
    """The capture for --source or --camera, or a one-line error naming what was tried."""
    if options.source is not None:
        source = options.source
        if "://" not in source:
            check_input_file(source, "a video")
        capture = cv2.VideoCapture(source)
        if not capture.isOpened() or not capture.grab():
            raise UserError(f"{source}: cannot be read as video")
        if Path(source).is_file():  # grab() consumed the first frame: start again from it
            capture.release()
            capture = cv2.VideoCapture(source)
        return capture, source
    indices = [options.camera] if options.camera is not None else [0, 1, 2]
    backend = cv2.CAP_DSHOW if sys.platform == "win32" else cv2.CAP_ANY
    for index in indices:
        capture = cv2.VideoCapture(index, backend)
        if capture.isOpened():
            if options.size:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, options.size[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, options.size[1])
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue would add latency
            return capture, f"camera {index}"
        capture.release()
    hint = {"darwin": "; on macOS, allow camera access for your terminal in System Settings > Privacy",
            "win32": "; on Windows the DirectShow backend was used: check that no other app holds the camera"}.get(
        sys.platform, "; on Linux, check /dev/video* and that your user is in the 'video' group")
    tried = ", ".join(str(i) for i in indices)
    raise UserError(f"no camera found (tried index {tried}){hint}; or use --source FILE_OR_URL")


class Recorder:
    """Writes shown frames with their real display times (PyAV, H.264) on its own thread."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, overwrite: bool = False):
        import av

        from realtime_style.video import tag_colors, yuv_matrix

        self.path = check_output_path(path, (), overwrite)
        made: list[Path] = []
        try:
            self._tmp = temporary_beside(self.path, made)
            self.container = av.open(str(self._tmp), "w")
        except BaseException:
            for tmp in made:
                discard(tmp)
            raise
        self.stream = self.container.add_stream("libx264", rate=30)
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"
        self.matrix = yuv_matrix(None, self.stream.width, self.stream.height)  # a camera's RGB: the players' default
        tag_colors(self.stream, self.matrix)
        self.stream.codec_context.time_base = Fraction(1, 1000)
        self.stream.options = {"preset": "veryfast", "crf": "20"}
        self.frames = 0
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._done = False
        self._error: BaseException | None = None
        self._last_ms = -1
        self._start: float | None = None
        self._thread = threading.Thread(target=self._run, name="rtstyle-recorder", daemon=True)
        self._thread.start()

    def add(self, rgb: np.ndarray, shown_at: float) -> None:
        with self._cond:
            self._queue.append((rgb, shown_at))
            self._cond.notify()

    def _run(self) -> None:
        from realtime_style.video import rgb_to_frame

        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._queue or self._done)
                    if not self._queue:
                        break
                    rgb, shown_at = self._queue.popleft()
                if self._start is None:
                    self._start = shown_at
                ms = max(self._last_ms + 1, round((shown_at - self._start) * 1000))
                self._last_ms = ms
                frame = rgb_to_frame(rgb[: self.stream.height, : self.stream.width], self.matrix)
                frame.pts, frame.time_base = ms, Fraction(1, 1000)
                self.container.mux(self.stream.encode(frame))
                self.frames += 1
        except BaseException as exc:  # reported by close()
            self._error = exc

    def close(self) -> Path | None:
        """Finish the file (flush, trailer, rename); None if nothing was recorded."""
        with self._cond:
            self._done = True
            self._cond.notify()
        self._thread.join()
        try:
            if self._error is None and self.frames:
                self.container.mux(self.stream.encode(None))
            self.container.close()
        except BaseException as exc:
            self._error = self._error or exc
        if self._error is not None or not self.frames:
            discard(self._tmp)
            if self._error is not None:
                raise UserError(f"recording {self.path} failed: {self._error}")
            return None
        commit(self._tmp, self.path)
        return self.path


class StyleSwitcher:
    """Loads the next style on a thread, so the window keeps running while a model loads."""

    def __init__(self, styles: list[str], current: StyleEngine, make_engine: Callable[[str], StyleEngine]):
        self.styles = styles
        self.engine = current
        self.index = styles.index(current.name) if current.name in styles else 0
        self._make = make_engine
        self._loading: threading.Thread | None = None
        self._ready: StyleEngine | None = None
        self.message = ""

    def request(self, index: int) -> None:
        if not self.styles or (self._loading and self._loading.is_alive()):
            return
        self.index = index % len(self.styles)
        name = self.styles[self.index]
        self.message = f"loading {name}..."

        def load() -> None:
            try:
                self._ready = self._make(name)
            except UserError as exc:
                self.message = str(exc)[:80]

        self._loading = threading.Thread(target=load, name="rtstyle-style-loader", daemon=True)
        self._loading.start()

    def swap_if_ready(self) -> bool:
        if self._ready is None:
            return False
        self.engine, self._ready = self._ready, None
        self.message = ""
        return True

    def wait(self, timeout: float = 30.0) -> None:
        if self._loading:
            self._loading.join(timeout)
        self.swap_if_ready()


class WebcamLoop:
    """The live loop; `run()` returns the summary. `on_frame` lets scripts and tests drive the keys."""

    def __init__(self, engine: StyleEngine, options: WebcamOptions, styles: list[str] | None = None,
                 make_engine: Callable[[str], StyleEngine] | None = None,
                 on_frame: Callable[[WebcamLoop, int], None] | None = None):
        self.options = options
        self.controls = engine.controls
        self.switcher = StyleSwitcher(styles or [engine.name], engine,
                                      make_engine or engine.sibling)
        self.on_frame = on_frame
        self.stabilizer = Stabilizer(options.stabilize, device=engine.blend_device) if options.stabilize else None
        self.view = "stylized"
        self.paused = False
        self.show_help = False
        self.quit = False
        self.recorder: Recorder | None = None
        self.summary = WebcamSummary()
        self.last_shown: np.ndarray | None = None
        self.last_input_index = -1
        self._canvas: np.ndarray | None = None
        self._window = "rtstyle"
        self._window_sized = False
        self._virtual = None
        self._times: deque = deque(maxlen=30)
        self._dirty = False  # a key changed what is shown: recompose even while paused
        self._record_request: tuple[Path, bool] | None = (Path(options.record), False) if options.record else None
        self.governor: ScaleGovernor | None = None  # made in run(), when the camera's frame rate is known

    @property
    def engine(self) -> StyleEngine:
        return self.switcher.engine

    def run(self) -> WebcamSummary:
        if self.options.window:
            self._open_window()  # before the camera thread, so a missing GUI fails with nothing running
        camera = Camera(self.options).start()
        if self.options.auto_scale:
            self.governor = ScaleGovernor(1.0 / camera.fps, self.controls.scale or 1.0)
            self.controls.scale = self.governor.scale
        began = time.perf_counter()
        frame = None
        try:
            while not self.quit:
                if not self.paused or frame is None:
                    got = camera.slot.get(timeout=self.options.stall_seconds)
                    if got is None:
                        self.summary.ended_because = camera.slot.reason or (
                            f"no frame for {self.options.stall_seconds:.0f} s: the source stalled")
                        break
                    frame, captured_at, index = got
                    self.last_input_index = index
                busy_from = time.perf_counter()
                if self.switcher.swap_if_ready():
                    self._dirty = True
                if self.paused and not self._dirty and self.last_shown is not None:
                    view = self.last_shown  # paused: show the same picture, do not run the net again
                else:
                    view = self._compose(frame)
                    self._dirty = False
                if self._record_request:
                    path, overwrite = self._record_request
                    self._record_request = None
                    self.recorder = Recorder(path, view.shape[1], view.shape[0], overwrite)
                self._show(view)
                shown_at = time.perf_counter()
                if self.paused:  # the same frame again: not a new frame shown, nor recorded
                    time.sleep(0.01)
                    continue
                if self.governor:
                    self.controls.scale = self.governor.update(shown_at - busy_from)
                if self.recorder:
                    self.recorder.add(view, shown_at)
                self.summary.frames_shown += 1
                self.summary.latencies_ms.append((shown_at - captured_at) * 1000)
                if self.on_frame:
                    self.on_frame(self, self.summary.frames_shown)
                if self.options.max_frames and self.summary.frames_shown >= self.options.max_frames:
                    self.summary.ended_because = f"--max-frames {self.options.max_frames}"
                    break
        except KeyboardInterrupt:
            self.summary.ended_because = "Ctrl-C"
        finally:
            self.summary.seconds = time.perf_counter() - began
            self.summary.scale, self.summary.auto_scale = self.controls.scale or 1.0, self.governor is not None
            camera.stop()
            self.summary.frames_captured = camera.frames_read
            self.stop_recording()
            if self._virtual is not None:
                self._virtual.close()
            if self.options.window:
                cv2.destroyAllWindows()
        return self.summary

    # --- what is shown -------------------------------------------------------------------------
    def _compose(self, frame: np.ndarray) -> np.ndarray:
        if self.view == "original":
            styled = frame
        else:
            styled = self.engine.stylize(frame, self.controls)
            if self.stabilizer:
                styled = self.stabilizer(frame, styled)
        if self.view == "split":
            if self._canvas is None or self._canvas.shape != frame.shape:
                self._canvas = np.empty_like(frame)
            half = frame.shape[1] // 2
            self._canvas[:, :half] = frame[:, :half]
            self._canvas[:, half:] = styled[:, half:]
            styled = self._canvas
        self.last_shown = styled
        return styled

    def _overlay(self, view: np.ndarray) -> np.ndarray:
        """Text on a copy for the window only; recordings and the virtual camera get the clean image."""
        shown = cv2.cvtColor(view, cv2.COLOR_RGB2BGR)
        recent = self.summary.latencies_ms[-30:]
        fps = self._recent_fps()
        lines = [f"{self.engine.display_name}  {fps:.1f} fps  {np.median(recent) if recent else 0:.0f} ms  "
                 f"strength {self.controls.strength:.1f}  scale {self.controls.scale or 1.0:.2f}"
                 + (" auto" if self.governor else "")
                 + ("  colours kept" if self.controls.preserve_color else "")
                 + ("  REC" if self.recorder else "") + ("  PAUSED" if self.paused else "")]
        if self.switcher.message:
            lines.append(self.switcher.message)
        lines.append(KEYS_HELP if self.show_help else "h: keys")
        band = shown[: 8 + 22 * len(lines)]
        band //= 3  # a dark band under the text, readable on any picture
        for i, text in enumerate(lines):
            cv2.putText(shown, text, (10, 22 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                        cv2.LINE_AA)
        return shown

    def _recent_fps(self) -> float:
        self._times.append(time.perf_counter())
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def _open_window(self) -> None:
        try:  # resizable, aspect kept, without the Qt backend's toolbar
            cv2.namedWindow(self._window, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error:
            raise UserError("this OpenCV has no window support (opencv-python-headless). For the window: "
                            "pip uninstall -y opencv-python-headless && pip install opencv-python; "
                            "or run with --no-window (with --record or --virtual-cam)") from None
        if self.options.fullscreen:
            cv2.setWindowProperty(self._window, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)

    def _show(self, view: np.ndarray) -> None:
        if self.options.virtual_cam:
            self._send_virtual(view)
        if not self.options.window:
            return
        if not self._window_sized and not self.options.fullscreen:
            cv2.resizeWindow(self._window, view.shape[1], view.shape[0])  # start at the frame's own size
            self._window_sized = True
        cv2.imshow(self._window, self._overlay(view))
        key = cv2.waitKey(1) & 0xFF
        if key != 0xFF:
            self.handle_key(chr(key) if key < 128 else "")
        if cv2.getWindowProperty(self._window, cv2.WND_PROP_VISIBLE) < 1:
            self.quit = True

    def _send_virtual(self, view: np.ndarray) -> None:
        if self._virtual is None:
            try:
                import pyvirtualcam
            except ImportError:
                raise UserError("--virtual-cam needs pyvirtualcam: pip install 'rtstyle[virtualcam]'") from None
            try:
                self._virtual = pyvirtualcam.Camera(width=view.shape[1], height=view.shape[0], fps=30)
            except RuntimeError as exc:
                raise UserError(f"--virtual-cam: no virtual camera device ({exc})") from None
        self._virtual.send(view)

    # --- keys ------------------------------------------------------------------------------------
    def handle_key(self, key: str) -> None:
        """One key press, from the window or from a script."""
        c = self.controls
        self._dirty = True
        if key in ("q", "\x1b"):
            self.quit = True
        elif key == "n":
            self.switcher.request(self.switcher.index + 1)
        elif key == "p":
            self.switcher.request(self.switcher.index - 1)
        elif key.isdigit() and key != "0":
            self.switcher.request(int(key) - 1)
        elif key in ("+", "="):
            c.strength = min(1.0, round(c.strength + 0.1, 2))
        elif key in ("-", "_"):
            c.strength = max(0.0, round(c.strength - 0.1, 2))
        elif key in ("[", "]"):
            self.governor = None  # a scale chosen by hand stays
            scale = c.scale or 1.0
            steps = SCALE_STEPS
            i = min(range(len(steps)), key=lambda j: abs(steps[j] - scale))
            c.scale = steps[max(0, i - 1)] if key == "[" else steps[min(len(steps) - 1, i + 1)]
        elif key == "v":
            self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        elif key == "c":
            c.preserve_color = not c.preserve_color
        elif key == "s":
            self.screenshot()
        elif key == "r":
            if self.recorder:
                self.stop_recording()
            else:
                self.start_recording(Path(self.options.screenshot_dir) / f"rtstyle_{_stamp()}.mp4")
        elif key == " ":
            self.paused = not self.paused
        elif key == "h":
            self.show_help = not self.show_help

    def screenshot(self) -> Path | None:
        if self.last_shown is None:
            return None
        return save_image(Path(self.options.screenshot_dir) / f"rtstyle_{_stamp()}.png", self.last_shown)

    def start_recording(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Start with the next frame shown (the recorder needs its size)."""
        if self.recorder is None:
            self._record_request = (Path(path), overwrite)

    def stop_recording(self) -> None:
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            written = recorder.close()
            if written:
                self.summary.recording = str(written)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"


def run_webcam(engine: StyleEngine, options: WebcamOptions, styles: list[str] | None = None,
               on_frame: Callable[[WebcamLoop, int], None] | None = None) -> WebcamSummary:
    """Run the loop; a --record file is checked up front and finalized on any exit."""
    if options.record:
        check_output_path(options.record, (options.source,) if options.source else (), overwrite=False)
    return WebcamLoop(engine, options, styles, on_frame=on_frame).run()
