"""``deepspot-sd train``, ``calibrate`` and ``fine-tune``: wrappers of :mod:`deepspot_sd.models`.

The options of ``train`` and ``calibrate`` are those of ``scripts/train.py`` and ``scripts/calibrate_threshold.py``.
Every function of :mod:`deepspot_sd.models` is imported inside the subcommand, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Option {option} should be KEY=JSON, got {item!r}.")
        out[key] = json.loads(value)
    return out


def _image_files(items: list[Path]) -> list[Path]:
    from ._batch import expand_inputs

    return [p for p in expand_inputs(items) if p.is_file()]


def add_parsers(sub: Any, **kwargs: Any) -> None:
    """Add the ``train``, ``calibrate`` and ``fine-tune`` subcommands to the subparsers ``sub``."""
    # ---------------------------------------------------------------------------------------------- train
    p = sub.add_parser(
        "train",
        help="train an enhancement network on simulated images (resumable), or export a checkpoint",
        description=(
            "Train a DeepSpot enhancement network on freshly simulated images (optionally on real backgrounds "
            "from your own images); re-running the same command resumes after the last complete epoch. With "
            "--export, write the checkpoint in --out as a model folder that `deepspot-sd detect --model` takes."
        ),
        **kwargs,
    )
    p.add_argument("--config", default="compact", help="'compact', 'paper' or a path to a config.json")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder (resumed when it holds a checkpoint)")
    p.add_argument("--epochs", type=int, default=20, help="total number of epochs (a resumed run continues to it)")
    p.add_argument("--steps-per-epoch", type=int, default=50, help="Adam steps per epoch")
    p.add_argument("--batch-size", type=int, default=8, help="images per step")
    p.add_argument("--patch-size", type=int, default=None, help="side of training images (default: tile size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training images")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--spot-weight", type=float, default=0.0, help="weight of the per-spot peak loss term (0: paper)")
    p.add_argument("--background-weight", type=float, default=0.0, help="weight of the background loss term (0: paper)")
    p.add_argument("--validation-images", type=int, default=24, help="size of the per-epoch validation set")
    p.add_argument("--validation-seed", type=int, default=0, help="seed of the validation set")
    p.add_argument("--target-cap", type=float, default=150.0, help="cap of non-spot target pixels; <= 0: no cap")
    p.add_argument("--init-weights", type=Path, default=None, help="weights file or model folder to start from")
    p.add_argument("--no-resume", action="store_true", help="fail instead of resuming an existing checkpoint")
    p.add_argument("--prefetch", type=int, default=2, help="batches simulated ahead in a background thread")
    p.add_argument("--workers", type=int, default=0, help="simulate batches in this many processes (0: one thread)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this budget")
    p.add_argument(
        "--real-images", nargs="*", type=Path, default=[], help="real images (files or folders) for hybrid backgrounds"
    )
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
    p.add_argument("--export-which", choices=("best", "last"), default="best", help="which checkpoint to export")
    p.add_argument("--name", default=None, help="model name of the export (default: the folder's name)")
    p.set_defaults(run=run_train)

    # ---------------------------------------------------------------------------------------------- calibrate
    p = sub.add_parser(
        "calibrate",
        help="choose a model's detection threshold (simulated validation set, or your annotated images)",
        description=(
            "Choose a model folder's detection threshold. Without --annotated: re-score the model on --n-images "
            "fresh simulated validation images drawn like its training data (another validation seed than "
            "training's) and print F1 / precision / recall per threshold. With --annotated: use your own images "
            "with point annotations instead, IMAGE.tif + IMAGE.csv (columns x, y: 0-based pixel centres, x = "
            "column; the convention of `dsd.io.read_spots_csv`). --write stores the best threshold in the "
            "folder's config.json."
        ),
        **kwargs,
    )
    p.add_argument("model", type=Path, help="model folder (config.json + weights)")
    p.add_argument("--annotated", nargs="+", type=Path, default=None, help="annotated images: files or folders")
    p.add_argument("--n-images", type=int, default=96, help="simulated validation images (without --annotated)")
    p.add_argument("--validation-seed", type=int, default=1, help="validation seed (training validates on 0)")
    p.add_argument("--real-images", nargs="*", type=Path, default=[], help="real images for hybrid backgrounds")
    p.add_argument("--real-fraction", type=float, default=0.0, help="fraction of validation images on real ones")
    p.add_argument("--target-cap", type=float, default=150.0, help="cap of non-spot target pixels")
    p.add_argument("--radius", type=float, default=3.0, help="matching radius in px (annotated images)")
    p.add_argument("--write", action="store_true", help="store the best threshold in the folder's config.json")
    p.set_defaults(run=run_calibrate)

    # ---------------------------------------------------------------------------------------------- fine-tune
    p = sub.add_parser(
        "fine-tune",
        help="adapt the shipped model to your microscope: calibrate on your images, then fine-tune",
        description=(
            "Measure the background, noise and spots of your images (`dsd.models.calibrate`, one channel of each), "
            "then continue training the model on images simulated to match them, half of them on your own "
            "spot-suppressed backgrounds (`dsd.models.fine_tune`); resumable. The model folder is written to "
            "{out}/model; pass it to `deepspot-sd detect --model`. Images that have a point CSV next to them "
            "(IMAGE.csv, columns x, y) are then used to choose the fine-tuned model's threshold, as "
            "`deepspot-sd calibrate --annotated --write` does."
        ),
        **kwargs,
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="TIFF files or folders of them")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder; the model goes to {out}/model")
    p.add_argument("--model", default=None, help="starting model name or folder (default: the shipped model)")
    p.add_argument("--channel", type=int, default=0, help="channel of each image to calibrate on")
    p.add_argument("--z", default="max", metavar="{max,N}", help="z-stacks: 'max' projection or a plane index")
    p.add_argument("--epochs", type=int, default=5, help="epochs")
    p.add_argument("--steps-per-epoch", type=int, default=50, help="Adam steps per epoch")
    p.add_argument("--batch-size", type=int, default=8, help="images per step")
    p.add_argument("--real-fraction", type=float, default=0.5, help="fraction of images on your backgrounds")
    p.add_argument("--learning-rate", type=float, default=5e-5, help="Adam learning rate")
    p.add_argument("--validation-images", type=int, default=16, help="size of the validation set")
    p.add_argument("--min-snr", type=float, default=6.0, help="SNR of the spots used to measure spot size")
    p.add_argument("--seed", type=int, default=0, help="seed of the training data")
    p.add_argument("--no-resume", action="store_true", help="start again instead of resuming")
    p.set_defaults(run=run_fine_tune)


def run_train(args: argparse.Namespace) -> int:
    """Run ``deepspot-sd train``."""
    from deepspot_sd import models
    from deepspot_sd._logging import logger

    if args.export is not None:
        dst = models.export_model(args.out, args.export, name=args.name, which=args.export_which)
        print(f"model folder written: {dst}")
        return 0
    overrides = _pairs(args.set, "--set")
    if args.config in ("compact", "paper"):
        config = models.ModelConfig.preset(args.config, **overrides)
    else:
        config = models.ModelConfig.from_json(args.config)
        config = config.replace(**overrides) if overrides else config
    real = _image_files(args.real_images)
    backgrounds = models.load_real_backgrounds(real) if real else ()
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
        background_names=[path.stem for path in real],
        real_fraction=args.real_fraction,
        simulation_overrides=_pairs(args.simulate, "--simulate"),
        patch_size=args.patch_size,
        workers=args.workers,
        max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
        show_progress_bar=not args.quiet,
    )
    if len(history):
        last = history.iloc[-1]
        logger.info("Done: %d epochs.", last["epoch"])
        print(
            f"{int(last['epoch'])} epochs; last calibrated validation F1 {last['val_f1_calibrated']:.4f} "
            f"(threshold {last['best_threshold']:.1f}); checkpoints in {args.out}"
        )
    return 0


def _annotated(items: list[Path], z: str = "max") -> list[tuple[Path, Any, Any]]:
    """``(path, image (y, x), spots (n, 2) row/col)`` of every image that has a point CSV next to it."""
    import numpy as np
    import pandas as pd

    from deepspot_sd.io import read_tiff

    from ._batch import _stem, _z_option

    out = []
    for path in _image_files(items):
        csv = path.with_name(f"{_stem(path)}.csv")
        if not csv.is_file():
            continue
        image = read_tiff(path, z_projection=_z_option(z)).images["image"].data[0].compute()
        df = pd.read_csv(csv)
        out.append((path, np.asarray(image), df[["y", "x"]].to_numpy(float)))
    return out


def _calibrate_on(model: Any, annotated: list[tuple[Path, Any, Any]], *, radius: float) -> tuple[float, Any]:
    from deepspot_sd import models, tl

    enhanced = [tl.enhance_array(image, model) for _, image, _ in annotated]
    return models.calibrate_threshold(
        enhanced, [spots for *_, spots in annotated], min_distance=model.config.min_distance, radius=radius
    )


def _write_threshold(folder: Path, model: Any, best: float, table: Any, calibration: dict[str, Any]) -> None:
    config = model.config
    calibration["f1"] = round(float(table.loc[table["threshold"] == best, "f1"].iloc[0]), 5)
    extra = {**config.extra, "threshold_calibration": calibration}
    config.replace(threshold=float(best), extra=extra).to_json(folder / "config.json")
    print(f"written to {folder / 'config.json'}")


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``deepspot-sd calibrate``."""
    from deepspot_sd import models

    model = models.load_model(args.model)
    config = model.config
    if args.annotated:
        annotated = _annotated(args.annotated)
        if not annotated:
            raise SystemExit("deepspot-sd calibrate: no image with a point CSV (IMAGE.csv) in --annotated.")
        best, table = _calibrate_on(model, annotated, radius=args.radius)
        calibration: dict[str, Any] = {"annotated_images": [p.name for p, *_ in annotated]}
        n = len(annotated)
    else:
        real = _image_files(args.real_images)
        backgrounds = models.load_real_backgrounds(real) if real else ()
        validation = models.validation_set(
            args.n_images,
            tile_size=config.tile_size,
            seed=args.validation_seed,
            target_cap=args.target_cap,
            normalization_kwargs=config.normalization_kwargs,
            backgrounds=backgrounds,
            real_fraction=args.real_fraction,
        )
        enhanced = models.predict_images(model.keras_model, [s.image for s in validation])
        best, table = models.calibrate_threshold(
            enhanced, [s.spots for s in validation], min_distance=config.min_distance
        )
        n = len(validation)
        calibration = {
            "n_images": n,
            "validation_seed": args.validation_seed,
            "real_fraction": args.real_fraction,
            "n_backgrounds": len(backgrounds),
            "backgrounds": [path.stem for path in real],
        }
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"best threshold {best:g} (stored: {config.threshold:g}) on {n} images")
    if args.write:
        _write_threshold(args.model, model, best, table, calibration)
    return 0


def run_fine_tune(args: argparse.Namespace) -> int:
    """Run ``deepspot-sd fine-tune``."""
    from deepspot_sd import models
    from deepspot_sd.io import read_tiff

    from ._batch import _z_option

    files = _image_files(args.images)
    if not files:
        raise SystemExit("deepspot-sd fine-tune: no .tif/.tiff image found.")
    calibrations = [
        models.calibrate(
            read_tiff(path, z_projection=_z_option(args.z)),
            "image",
            channel=args.channel,
            min_snr=args.min_snr,
            seed=args.seed,
        )
        for path in files
    ]
    model = models.fine_tune(
        calibrations,
        output_dir=args.out,
        model=args.model,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        real_fraction=args.real_fraction,
        learning_rate=args.learning_rate,
        validation_images=args.validation_images,
        seed=args.seed,
        resume=not args.no_resume,
        show_progress_bar=not args.quiet,
    )
    folder = Path(args.out) / "model"
    annotated = _annotated(args.images, args.z)
    if annotated:
        best, table = _calibrate_on(model, annotated, radius=3.0)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        _write_threshold(folder, model, best, table, {"annotated_images": [p.name for p, *_ in annotated]})
    print(f"fine-tuned model folder: {folder}")
    return 0
