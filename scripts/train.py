"""Train a DeepSpot enhancement network on simulated images (resumable), or export a checkpoint as a model folder.

Examples
--------
Train (re-running the same command resumes after the last complete epoch)::

    TF_NUM_INTRAOP_THREADS=2 python scripts/train.py --config compact --out checkpoints/compact \
        --epochs 60 --steps-per-epoch 50 --batch-size 8 --seed 0

Export the best checkpoint (highest calibrated validation F1, with its threshold) as a shipped model::

    python scripts/train.py --out checkpoints/compact --export src/deepspot_sd/models/deepspot_v1
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="compact", help="'compact', 'paper' or a path to a config.json")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder (resumed when it holds a checkpoint)")
    p.add_argument("--epochs", type=int, default=20, help="total number of epochs (a resumed run continues to it)")
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=None, help="side of training images (default: tile size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--spot-weight", type=float, default=0.0, help="weight of the per-spot peak loss term (0: paper)")
    p.add_argument("--background-weight", type=float, default=0.0, help="weight of the background loss term (0: paper)")
    p.add_argument("--validation-images", type=int, default=24)
    p.add_argument("--validation-seed", type=int, default=0)
    p.add_argument("--target-cap", type=float, default=150.0, help="cap of non-spot target pixels; <= 0: no cap")
    p.add_argument("--init-weights", type=Path, default=None, help="weights file or model folder to start from")
    p.add_argument("--no-resume", action="store_true", help="fail instead of resuming an existing checkpoint")
    p.add_argument("--prefetch", type=int, default=2, help="batches simulated ahead in a background thread")
    p.add_argument("--workers", type=int, default=0, help="simulate batches in this many processes (0: one thread)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this budget")
    p.add_argument("--real-images", nargs="*", type=Path, default=[], help="real images for hybrid backgrounds")
    p.add_argument("--real-fraction", type=float, default=0.0, help="fraction of images on real backgrounds")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a config field")
    p.add_argument(
        "--simulate",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a drawn simulate_image argument of every training image, e.g. puncta_per_spot=[0,3]",
    )
    p.add_argument("--export", type=Path, default=None, help="export the checkpoint in --out to this model folder")
    p.add_argument("--export-which", choices=("best", "last"), default="best")
    p.add_argument("--name", default=None, help="model name of the export (default: the folder's name)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command line interface."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from deepspot_sd import models

    if args.export is not None:
        dst = models.export_model(args.out, args.export, name=args.name, which=args.export_which)
        logging.getLogger("deepspot_sd").info("Model folder written: %s", dst)
        return 0

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    if args.config in ("compact", "paper"):
        config = models.ModelConfig.preset(args.config, **overrides)
    else:
        config = models.ModelConfig.from_json(args.config)
        config = config.replace(**overrides) if overrides else config
    simulation_overrides = {}
    for item in args.simulate:
        key, _, value = item.partition("=")
        simulation_overrides[key] = json.loads(value)
    backgrounds = models.load_real_backgrounds(args.real_images) if args.real_images else ()
    history = models.train(
        config,
        output_dir=args.out,
        steps_per_epoch=args.steps_per_epoch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        learning_rate=args.learning_rate,
        spot_weight=args.spot_weight,
        background_weight=args.background_weight,
        init_weights=args.init_weights,
        validation_images=args.validation_images,
        validation_seed=args.validation_seed,
        target_cap=args.target_cap if args.target_cap > 0 else None,
        resume=not args.no_resume,
        prefetch=args.prefetch,
        backgrounds=backgrounds,
        background_names=[path.stem for path in args.real_images],
        real_fraction=args.real_fraction,
        simulation_overrides=simulation_overrides,
        patch_size=args.patch_size,
        workers=args.workers,
        max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
    )
    if len(history):
        last = history.iloc[-1]
        logging.getLogger("deepspot_sd").info(
            "Done: %d epochs, last calibrated val F1 %.4f (threshold %.1f).",
            last["epoch"],
            last["val_f1_calibrated"],
            last["best_threshold"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
