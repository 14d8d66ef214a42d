"""Pixel verification of a near-duplicate candidate: is `copy` a cropped / mirrored / rotated /
rescaled version of `orig`, pixel for pixel, or only a similar photo (another frame of the same
shelf)?

Both images are trimmed of a uniform frame, turned grey and squashed to SIDE x SIDE. For each
hypothesis (mirror or not, rotation, crop fraction) the copy is mapped back into the
original's frame: un-mirrored, un-rotated, resized to fraction x SIDE, and its central part
(CORE, away from the rotation's corners and overlays near the border) is slid over the
original; the score is the best normalised cross-correlation (NCC) over all positions and
hypotheses. A true copy is the same pixels resampled (NCC near 1 except for overlays, blur,
JPEG); another frame shot a moment later differs by parallax, hand and lighting. Cost: one
small brute-force search per candidate pair (only pairs the descriptor already flags).
"""

import numpy as np
from PIL import Image, ImageOps

SIDE = 64
CORE = 0.7
ANGLES = (-10.0, -7.5, -5.0, -2.5, 0.0, 2.5, 5.0, 7.5, 10.0)
FRACTIONS = (0.8, 0.85, 0.9, 0.95, 1.0)


def prepare(img, trimmed):
    g = ImageOps.grayscale(trimmed(img))
    return g


def _box(ii, h, w):
    """Sums of every h x w window from an integral image ii [H+1, W+1]."""
    return ii[h:, w:] - ii[:-h, w:] - ii[h:, :-w] + ii[:-h, :-w]


class Original:
    """The original's grey SIDE x SIDE image with its FFT and window statistics cached."""

    def __init__(self, orig_g):
        o = np.asarray(orig_g.resize((SIDE, SIDE), Image.BILINEAR), np.float64)
        self.o = o
        self.F = np.fft.rfft2(o)
        self.ii = np.pad(o, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        self.ii2 = np.pad(o * o, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        self.stats = {}

    def window_std(self, h, w):
        if (h, w) not in self.stats:
            s1, s2 = _box(self.ii, h, w), _box(self.ii2, h, w)
            self.stats[(h, w)] = np.sqrt(np.maximum(s2 - s1 * s1 / (h * w), 0.0))
        return self.stats[(h, w)]

    def ncc_max(self, tpl):
        """Max normalised cross-correlation of tpl [h, w] over all positions (FFT)."""
        h, w = tpl.shape
        t = tpl - tpl.mean()
        tn = np.sqrt((t * t).sum())
        if tn < 1e-3:
            return 0.0
        pad = np.zeros_like(self.o)
        pad[:h, :w] = t
        corr = np.fft.irfft2(self.F * np.conj(np.fft.rfft2(pad)), s=self.o.shape)
        num = corr[: SIDE - h + 1, : SIDE - w + 1]
        den = self.window_std(h, w) * tn
        return float((num / np.maximum(den, 1e-3 * tn)).max())


def score(copy_g, orig):
    """Best NCC over the hypotheses; copy_g: PIL grey image (trimmed); orig: Original or a PIL
    grey image."""
    if not isinstance(orig, Original):
        orig = Original(orig)
    best = -1.0
    for mirror in (False, True):
        c0 = ImageOps.mirror(copy_g) if mirror else copy_g
        for a in ANGLES:
            c1 = c0.rotate(-a, resample=Image.BILINEAR, expand=False) if a else c0
            for f in FRACTIONS:
                n = max(8, round(SIDE * f))
                c = np.asarray(c1.resize((n, n), Image.BILINEAR), np.float64)
                k = max(6, round(n * CORE))
                off = (n - k) // 2
                best = max(best, orig.ncc_max(c[off : off + k, off : off + k]))
    return best
