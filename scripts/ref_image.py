#!/usr/bin/python3
"""ref_image.py — torchvision's image preprocessing, the reference graft's images are tested against.

usage: ref_image.py IMAGE OUT [--resize N] [--crop N]
       ref_image.py --batch LIST        (one job per line: IMAGE OUT RESIZE CROP)

For each image: PIL opens it, ImageOps.exif_transpose applies its Exif orientation (graft does this;
torchvision's own loaders do not), convert("RGB") as torchvision's pil_loader does, then
transforms.Resize(RESIZE) (bilinear), CenterCrop(CROP), ToTensor(). RESIZE or CROP <= 0 skips that
step. Normalize is left out: OUT gets the (1, 3, H, W) tensor in [0, 1], raw float32, C order, and
"OUT H W" is printed. Defaults: --resize 256 --crop 224 (graft_image_prep_imagenet).

Needs Debian's python3-torchvision and python3-pil.
"""
import sys

from PIL import Image, ImageOps
from torchvision import transforms


def preprocess(image, out, resize, crop):
    with Image.open(image) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    steps = []
    if resize > 0:
        steps.append(transforms.Resize(resize, interpolation=transforms.InterpolationMode.BILINEAR))
    if crop > 0:
        steps.append(transforms.CenterCrop(crop))
    steps.append(transforms.ToTensor())
    x = transforms.Compose(steps)(img).unsqueeze(0).contiguous()
    x.numpy().astype("<f4").tofile(out)
    print(out, x.shape[2], x.shape[3])


def main(argv):
    if len(argv) == 2 and argv[0] == "--batch":
        with open(argv[1]) as f:
            for line in f:
                if line.strip():
                    image, out, resize, crop = line.split()
                    preprocess(image, out, int(resize), int(crop))
        return 0
    pos, opts = [], {"--resize": 256, "--crop": 224}
    it = iter(argv)
    for a in it:
        if a in opts:
            opts[a] = int(next(it))
        else:
            pos.append(a)
    if len(pos) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    preprocess(pos[0], pos[1], opts["--resize"], opts["--crop"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
