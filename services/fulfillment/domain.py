"""Fulfillment's rules: which box, how heavy, what goes in which parcel. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_WEIGHT_G = 500
DEFAULT_DIMS = (150, 100, 80)
FRAGILE_PADDING_MM = 20  # bubble wrap on every side of a fragile item
FILL_RATIO = 0.85        # items never fill a box completely


@dataclass(frozen=True)
class Box:
    code: str
    inner: tuple[int, int, int]
    tare_g: int
    max_weight_g: int

    @property
    def volume(self) -> int:
        return self.inner[0] * self.inner[1] * self.inner[2]


@dataclass(frozen=True)
class Item:
    sku: str
    weight_g: int
    dims: tuple[int, int, int]
    attributes: tuple[str, ...] = ()

    @property
    def packed_dims(self) -> tuple[int, int, int]:
        pad = 2 * FRAGILE_PADDING_MM if "fragile" in self.attributes else 0
        return (self.dims[0] + pad, self.dims[1] + pad, self.dims[2] + pad)

    @property
    def volume(self) -> int:
        d = self.packed_dims
        return d[0] * d[1] * d[2]


@dataclass
class PackedBox:
    box: Box
    items: list[Item] = field(default_factory=list)

    @property
    def weight_g(self) -> int:
        return self.box.tare_g + sum(i.weight_g for i in self.items)


def fits_item(item: Item, box: Box) -> bool:
    """Any rotation: compare sorted dimensions."""
    return all(a <= b for a, b in zip(sorted(item.packed_dims), sorted(box.inner), strict=True))


def fits(items: Sequence[Item], box: Box) -> bool:
    return (all(fits_item(i, box) for i in items)
            and sum(i.volume for i in items) <= box.volume * FILL_RATIO
            and box.tare_g + sum(i.weight_g for i in items) <= box.max_weight_g)


def choose_boxes(items: Sequence[Item], boxes: Sequence[Box]) -> list[PackedBox]:
    """The smallest box that takes everything; else first-fit decreasing into as few boxes as
    possible, each then shrunk to the smallest box its contents fit. An item no box takes gets
    the largest box (an operator sees it as oversize)."""
    by_size = sorted(boxes, key=lambda b: (b.volume, b.max_weight_g))
    for box in by_size:
        if fits(items, box):
            return [PackedBox(box, list(items))]
    largest = by_size[-1]
    packed: list[PackedBox] = []
    for item in sorted(items, key=lambda i: (-i.volume, i.sku)):
        for pb in packed:
            if fits([*pb.items, item], pb.box):
                pb.items.append(item)
                break
        else:
            packed.append(PackedBox(largest, [item]))
    for pb in packed:
        pb.box = next((b for b in by_size if fits(pb.items, b)), pb.box)
    return packed


def outer_dims(box: Box) -> dict[str, int]:
    """Outer dimensions: the inner ones plus 5 mm of cardboard each side."""
    l, w, h = box.inner  # noqa: E741
    return {"l": l + 10, "w": w + 10, "h": h + 10}
