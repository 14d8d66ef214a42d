"""imagededup's PHash over a folder: encode every image, then find duplicates; prints JSON.

Usage: python imagededup_phash.py DIR WORKERS REPEAT

imagededup's package `__init__` files import its CNN method and plotting helpers, which need
torch, torchvision and matplotlib; PHash needs none of them. The packages are therefore
registered empty here, so `imagededup.methods.hashing` (the PHash code, unchanged) imports
without them. Timing starts after the imports (interpreter start-up is not throughput), and
covers `encode_images` (its own multiprocessing pool included) and `find_duplicates`; the best
of REPEAT runs is reported.
"""

import importlib.util
import json
import pathlib
import sys
import time
import types


def load_phash():
    spec = importlib.util.find_spec("imagededup")
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    for name, path in [("imagededup", root), ("imagededup.methods", root / "methods"), ("imagededup.utils", root / "utils")]:
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    from imagededup.methods.hashing import PHash

    return PHash


def main():
    image_dir, workers, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    PHash = load_phash()
    best = None
    for _ in range(repeat):
        phasher = PHash(verbose=False)
        start = time.perf_counter()
        encodings = phasher.encode_images(image_dir=image_dir, recursive=True, num_enc_workers=workers)
        duplicates = phasher.find_duplicates(encoding_map=encodings)
        elapsed = time.perf_counter() - start
        if best is None or elapsed < best[0]:
            best = (elapsed, len(encodings), sum(1 for v in duplicates.values() if v))
    elapsed, images, with_duplicates = best
    print(json.dumps({
        "images": images,
        "workers": workers,
        "seconds": elapsed,
        "images_per_second": images / elapsed,
        "files_with_duplicates": with_duplicates,
    }))


if __name__ == "__main__":
    main()
