"""A subset of the Oxford-IIIT Pets photos that means the same at any size of the data set."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Pets file names: the breed, an underscore, the photo's number ("Egyptian_Mau_129.jpg").
_PET_PHOTO = re.compile(r"^(?P<breed>.+)_(?P<number>\d+)\.jpg$")


def first_photos(path: str | os.PathLike[str], per_breed: int = 3) -> list[Path]:
    """The first ``per_breed`` photos of every breed, in order of their number.

    The real data set numbers each breed's photos with gaps (Abyssinian's 198 photos are not
    numbered 1 to 198), so "every photo numbered 3 or less" holds a different number of photos
    per breed; this takes exactly ``per_breed`` of each breed that has as many (all of a breed
    that has fewer). The photos are searched for in ``path`` and its ``images`` folder, so both
    fastai's ``untar_data(URLs.PETS)`` and its ``images`` folder work. Usable as a ``DataBlock``'s
    ``get_items``.

    Args:
        path: the Pets folder, or the folder of its photos.
        per_breed: how many photos of each breed, at least 1.

    Returns:
        The photos' paths, sorted by breed, then by number.

    Raises:
        ValueError: ``per_breed`` is not a positive whole number, or ``path`` holds no Pets photo.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ["cat_10.jpg", "cat_2.jpg", "cat_7.jpg", "dog_1.jpg", "notes.txt"]:
        ...     (folder / name).touch()
        >>> [p.name for p in first_photos(folder, per_breed=2)]
        ['cat_2.jpg', 'cat_7.jpg', 'dog_1.jpg']
    """
    if isinstance(per_breed, bool) or not isinstance(per_breed, int) or per_breed < 1:
        raise ValueError(f"per_breed must be a whole number of at least 1, got {per_breed!r}")
    folder = Path(path)
    if (folder / "images").is_dir():
        folder = folder / "images"
    by_breed: dict[str, list[tuple[int, Path]]] = {}
    for file in folder.iterdir() if folder.is_dir() else ():
        match = _PET_PHOTO.match(file.name)
        if match:
            by_breed.setdefault(match["breed"], []).append((int(match["number"]), file))
    if not by_breed:
        raise ValueError(
            f"path holds no Pets photo (no file named like 'Abyssinian_1.jpg'): {folder}; "
            "pass untar_data(URLs.PETS) or its 'images' folder"
        )
    return [
        file
        for breed in sorted(by_breed)
        for _, file in sorted(by_breed[breed])[:per_breed]
    ]
