"""`tutorial.first_photos`: the pages' subset of the Pets photos, the same rule at any size."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlens import tutorial


def _folder(tmp_path: Path, names: list[str]) -> Path:
    images = tmp_path / "oxford-iiit-pet" / "images"
    images.mkdir(parents=True)
    for name in names:
        (images / name).touch()
    return images.parent


def test_takes_the_first_photos_of_each_breed_by_number_not_by_name(tmp_path: Path) -> None:
    # As in the real set: numbers with gaps, so "number <= 3" would give Abyssinian one photo.
    root = _folder(
        tmp_path,
        ["Abyssinian_1.jpg", "Abyssinian_10.jpg", "Abyssinian_5.jpg", "Abyssinian_100.jpg",
         "great_pyrenees_2.jpg", "great_pyrenees_3.jpg", "great_pyrenees_1.jpg",
         "Egyptian_Mau_129.jpg", "Abyssinian_1.mat", "README.txt"],
    )
    names = [p.name for p in tutorial.first_photos(root, per_breed=3)]
    assert names == [
        "Abyssinian_1.jpg", "Abyssinian_5.jpg", "Abyssinian_10.jpg",
        "Egyptian_Mau_129.jpg",
        "great_pyrenees_1.jpg", "great_pyrenees_2.jpg", "great_pyrenees_3.jpg",
    ]
    assert tutorial.first_photos(root / "images", per_breed=3) == tutorial.first_photos(root, 3)


def test_the_standin_photos_give_per_breed_photos_of_every_breed(tmp_path: Path) -> None:
    tutorial.use_assets("standin", cache_dir=tmp_path / "cache", verbose=False)
    from fastai.data.external import URLs, untar_data

    photos = tutorial.first_photos(untar_data(URLs.PETS), per_breed=2)
    assert len(photos) == 2 * len(tutorial.PETS_BREEDS)


@pytest.mark.parametrize("per_breed", [0, -1, 1.5, True, "3"])
def test_refuses_a_count_that_is_not_a_positive_whole_number(
    tmp_path: Path, per_breed: object
) -> None:
    root = _folder(tmp_path, ["cat_1.jpg"])
    with pytest.raises(ValueError, match="per_breed"):
        tutorial.first_photos(root, per_breed)  # type: ignore[arg-type]


def test_refuses_a_folder_without_pets_photos(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no Pets photo"):
        tutorial.first_photos(tmp_path)
