"""Prints the benchmark table from bench.sh's JSON lines on stdin (one per core count)."""

import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
print("| cores | Sightline dedup (images/s) | imagededup PHash (images/s) | ratio |")
print("| ---: | ---: | ---: | ---: |")
for r in rows:
    ours, theirs = r["sightline"]["images_per_second"], r["imagededup"]["images_per_second"]
    print("| {} | {:.0f} | {:.0f} | {:.1f}x |".format(r["threads"], ours, theirs, ours / theirs))
last = rows[-1]["sightline"]
one = last["ms_per_image_one_thread"]
print(
    "\nSightline, one thread, ms per image ({:.2f} MP mean): decode {}, pixel hash {}, perceptual hash {}".format(
        last["mean_megapixels"], one["decode"], one["pixel_hash"], one["perceptual_hash"]
    )
)
