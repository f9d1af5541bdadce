"""Train SuperResolutionNet(upscale_factor=3) on scikit-image's sample photographs.

The tutorial downloads weights trained for 100 epochs on BSD300; there is no network here, so
this trains a checkpoint from photographs that ship inside scikit-image's wheel. Low-res inputs
are the Y channel bicubic-downscaled by 3 (8-bit, like a real small photo); the target is the
full-res Y channel. Seeded and single-threaded, so a rerun on the same machine gives the same
numbers. Reproduce the shipped checkpoint with::

    python -m conformance.models.train            # writes conformance/models/weights/superres_x3.pth
    python -m conformance.models.evaluate         # PSNR table on the held-apart photographs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from conformance.models.photos import TRAIN_IMAGES, downscale, luma, modcrop, photo
from conformance.models.superres import SuperResolutionNet

FACTOR = 3
DEFAULT_OUT = Path(__file__).with_name("weights") / "superres_x3.pth"


def make_pairs(names=TRAIN_IMAGES, factor: int = FACTOR) -> list[tuple[np.ndarray, np.ndarray]]:
    """(low-res, high-res) float32 Y-channel pairs in [0, 1], one per photograph."""
    pairs = []
    for name in names:
        hr = modcrop(luma(photo(name)), factor)
        lr = downscale(hr, factor)
        pairs.append((lr.astype(np.float32) / 255.0, hr.astype(np.float32) / 255.0))
    return pairs


def sample_batch(rng: np.random.Generator, pairs, batch: int, patch: int, factor: int = FACTOR):
    """Random aligned crops (``patch`` low-res pixels square) with random flips and transposes."""
    lrs, hrs = [], []
    for _ in range(batch):
        lr, hr = pairs[rng.integers(len(pairs))]
        i = rng.integers(lr.shape[0] - patch + 1)
        j = rng.integers(lr.shape[1] - patch + 1)
        lo = lr[i : i + patch, j : j + patch]
        hi = hr[i * factor : (i + patch) * factor, j * factor : (j + patch) * factor]
        # Photographs have no preferred orientation: the 8 flips/transposes are free extra data.
        if rng.integers(2):
            lo, hi = lo[:, ::-1], hi[:, ::-1]
        if rng.integers(2):
            lo, hi = lo[::-1], hi[::-1]
        if rng.integers(2):
            lo, hi = lo.T, hi.T
        lrs.append(lo)
        hrs.append(hi)
    as_tensor = lambda xs: torch.from_numpy(np.ascontiguousarray(np.stack(xs)[:, None]))  # noqa: E731
    return as_tensor(lrs), as_tensor(hrs)


class Progress:
    """A dependency-free progress bar on stderr (one line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, width: int = 30):
        self.total, self.width = total, width
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_decile = -1

    def update(self, done: int, note: str = "") -> None:
        elapsed = time.monotonic() - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        filled = self.width * done // self.total
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"{note} {elapsed:.0f}s elapsed, {eta:.0f}s left")
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if done == self.total else ""))
        elif done * 10 // self.total != self.last_decile:
            self.last_decile = done * 10 // self.total
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def train(*, steps: int = 3000, batch: int = 16, patch: int = 32, lr: float = 2e-3,
          seed: int = 0, threads: int = 1, progress: bool = True) -> SuperResolutionNet:
    """Train SuperResolutionNet(3) with Adam on MSE; cosine-decays the learning rate to 1%."""
    torch.set_num_threads(threads)  # the shared 2-core machine; also keeps runs reproducible
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pairs = make_pairs()
    model = SuperResolutionNet(upscale_factor=FACTOR)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 100)
    bar = Progress(steps) if progress else None
    running = None
    for step in range(1, steps + 1):
        x, target = sample_batch(rng, pairs, batch, patch)
        loss = torch.nn.functional.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if bar and (step % 10 == 0 or step == steps):
            bar.update(step, f"loss {running:.5f} (~{10 * np.log10(1 / running):.2f} dB)")
    return model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.models.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps (default: 3000)")
    parser.add_argument("--batch", type=int, default=16, help="crops per step (default: 16)")
    parser.add_argument("--patch", type=int, default=32, help="low-res crop size (default: 32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="initial learning rate (default: 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"checkpoint (default: {DEFAULT_OUT})")
    parser.add_argument("--no-eval", action="store_true", help="skip the PSNR table after training")
    args = parser.parse_args(argv)
    start = time.monotonic()
    model = train(steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr,
                  seed=args.seed, threads=args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"trained in {time.monotonic() - start:.0f} s; wrote {args.out} "
          f"({args.out.stat().st_size // 1024} KiB)")
    if not args.no_eval:
        from conformance.models.evaluate import evaluate, format_table

        print(format_table(evaluate(model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
