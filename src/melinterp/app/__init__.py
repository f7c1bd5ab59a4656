"""``melinterp app``: a web page (Gradio) that speaks with a pipeline, for several people at once.

    pip install 'melinterp[app]'
    melinterp app [--model DIR] [--host 127.0.0.1] [--port 7860] [--concurrency 2] [--share]

Two reference recordings (uploaded or recorded), a text, a mode and the mode's controls give the speech (to play
or download), the figure of ``melinterp synthesize --plot`` and the median f0 of the output and the references.
The model loads once and serves every session (`melinterp.app.page`).

This module imports no gradio: the page (`melinterp.app.page`, and `build_app` here) imports it when first used,
so ``import melinterp`` and the other commands never need the ``app`` extra.
"""

from __future__ import annotations

import argparse
import importlib


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="DIR",
                        help="a pipeline folder written by save_pretrained, or a Hub id user/name (default: the "
                             "model bundled with the package, melinterp.DEFAULT_MODEL)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on; 0.0.0.0 opens the page to the network (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, metavar="PORT",
                        help="port to serve on (default: the first free port from 7860)")
    parser.add_argument("--concurrency", type=int, default=2, metavar="N",
                        help="requests worked on at once, in worker threads; the model takes them one at a time, "
                             "the rest of a request (checks, f0, figure) runs beside it (default: 2)")
    parser.add_argument("--share", action="store_true",
                        help="also open a public gradio.live link (needs the internet; off by default)")


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ValueError(f"--concurrency must be a positive number of requests, got {args.concurrency}")
    try:
        from melinterp.app.page import build_app
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "gradio":
            raise
        raise RuntimeError("the web page needs gradio, which is not installed: pip install 'melinterp[app]'") from None

    from melinterp import DEFAULT_MODEL
    from melinterp.pipelines.hub import load_pipeline

    pipe = load_pipeline(args.model or DEFAULT_MODEL, option="--model")
    pipe.set_progress_bar_config(disable=True)
    build_app(pipe, concurrency=args.concurrency).launch(server_name=args.host, server_port=args.port,
                                                         share=args.share)
    return 0


def __getattr__(name):
    if name == "build_app":  # imports gradio: only on first use
        return importlib.import_module("melinterp.app.page").build_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
