"""Choose a model folder's detection threshold on a large validation set drawn like the training data.

Training picks a threshold after every epoch on a small validation set (24 images, cheap enough to score every
epoch); that choice is noisy. This script re-scores an exported model on ``--n-images`` fresh validation images
(another validation seed, so none of them picked the epoch) with the same recipe — the same simulated mix, the same
fraction of real backgrounds — prints the F1 / precision / recall per threshold, and with ``--write`` stores the best
threshold in the folder's ``config.json``. The held-out test seed of ``benchmarks/accuracy.py`` is never used.

Example::

    R=../shared/data/real_unlabeled
    python scripts/calibrate_threshold.py src/deepspot_sd/models/deepspot_v1 --n-images 96 --write \
        --real-images $R/rsfish_celegans_embryo_z52.tif $R/rsfish_celegans_embryo_mip.tif \
        $R/spotiflow_terra_livecell_2d.tif --real-fraction 0.3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the command line interface."""
    from deepspot_sd.models._training_data import DEFAULT_TARGET_CAP

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="model folder (config.json + weights)")
    p.add_argument("--n-images", type=int, default=96)
    p.add_argument("--validation-seed", type=int, default=1, help="validation seed (training validates on 0)")
    p.add_argument("--real-images", nargs="*", type=Path, default=[], help="real images for hybrid backgrounds")
    p.add_argument("--real-fraction", type=float, default=0.0)
    p.add_argument("--target-cap", type=float, default=DEFAULT_TARGET_CAP, help="cap of non-spot target pixels")
    p.add_argument("--write", action="store_true", help="store the best threshold in the folder's config.json")
    args = p.parse_args(argv)

    from deepspot_sd import models
    from deepspot_sd.models._train_eval import calibrate_threshold, predict_images

    model = models.load_model(args.model)
    config = model.config
    backgrounds = models.load_real_backgrounds(args.real_images) if args.real_images else ()
    validation = models.validation_set(
        args.n_images,
        tile_size=config.tile_size,
        seed=args.validation_seed,
        target_cap=args.target_cap,
        normalization_kwargs=config.normalization_kwargs,
        backgrounds=backgrounds,
        real_fraction=args.real_fraction,
    )
    enhanced = predict_images(model.keras_model, [s.image for s in validation])
    best, table = calibrate_threshold(enhanced, [s.spots for s in validation], min_distance=config.min_distance)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"best threshold {best:g} (stored: {config.threshold:g}) on {len(validation)} images")
    if args.write:
        calibration = {
            "n_images": len(validation),
            "validation_seed": args.validation_seed,
            "real_fraction": args.real_fraction,
            "n_backgrounds": len(backgrounds),
            "backgrounds": [path.stem for path in args.real_images],
            "f1": round(float(table.loc[table["threshold"] == best, "f1"].iloc[0]), 5),
        }
        path = args.model / "config.json"
        extra = {**config.extra, "threshold_calibration": calibration}
        config.replace(threshold=float(best), extra=extra).to_json(path)
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
