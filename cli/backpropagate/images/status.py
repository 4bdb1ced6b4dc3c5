"""Each stage image of this version on an engine: present, stale (only older builds are here) or missing."""

from __future__ import annotations

from dataclasses import dataclass

from backpropagate.images.recipes import RECIPES, REPOSITORY, image_ref


@dataclass(frozen=True)
class ImageStatus:
    stage: str  # the image's name (train, merge, gguf-convert)
    variant: str
    image: str  # the reference this version wants
    status: str  # present, stale or missing
    older: tuple[str, ...] = ()  # tags of other builds of this image and variant
    size_mb: int | None = None
    created: str | None = None


def image_statuses(client, base_image: str = "") -> list[ImageStatus]:
    statuses = []
    for recipe in RECIPES.values():
        present = {tag for image in client.images.list(name=REPOSITORY.format(name=recipe.name))
                   for tag in image.tags}
        for variant in recipe.locks:
            ref = image_ref(recipe, variant, base_image)
            if ref in present:
                attrs = client.images.get(ref).attrs
                statuses.append(ImageStatus(recipe.name, variant, ref, "present",
                                            size_mb=round(attrs.get("Size", 0) / 2**20),
                                            created=attrs.get("Created", "")[:19]))
                continue
            older = tuple(sorted(tag for tag in present if tag != ref and f"-{variant}" in tag))
            statuses.append(ImageStatus(recipe.name, variant, ref, "stale" if older else "missing", older=older))
    return statuses
