"""The offline demo behind ``make demo``: generate images on the sandbox and save them.

Prints the result the way the Jimeng image skill does: prompt, size, save path, and each image
numbered with its link.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import jimeng
from jimeng.sandbox._media import png_size

PROMPT = "A white Siamese cat sitting on a windowsill, sunlight streaming in"


async def main(prompt: str = PROMPT, out: str = "pic/") -> int:
    async with jimeng.Client(jimeng.Sandbox()) as client:
        result = await client.images.generate(prompt, size="2K")
        paths = await result.save(out)
    print("**Generation Info:**")
    print(f"- Prompt: {prompt}")
    width, height = png_size(Path(paths[0]).read_bytes())
    print(f"- Size: {width} × {height}")
    print(f"- Save Path: {Path(paths[0]).parent.resolve()}")
    for number, (image, path) in enumerate(zip(result.images, paths, strict=True), start=1):
        print(f"\n![Image {number}]({path})")
        print(f"Image {number}: {image.url} → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:])))
