"""``recommend --item-table NEW``: items outside the model's catalogue, scored from their
features alongside the catalogue.

The table's rows become features over the model's item feature vocabulary: through the
fitted transform of ``recli prep`` that ``recli train`` copied into the model file
(``meta.json``: ``features.item.transform``), from the same raw attribute columns the
features were fitted on; for a model trained on any other feature file, the table is in
the long form ``item, feature, value`` already. Features the model does not know (an
identity feature of a new id, a token never seen) add nothing. The model scores the new
items for each user with ``score_new_items`` (see :mod:`recli.models.base`); they compete
with the catalogue for the top k, and the output names them by their ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recli.console import log
from recli.errors import ConfigError, InputError

if TYPE_CHECKING:
    from recli.artifacts import ModelFile
    from recli.data.io import ReadOptions
    from recli.data.side import SideFeatures
    from recli.data.vocab import Vocab


@dataclass
class NewItems:
    """``catalogue``: the model's items then the new ones (index ``n_items + j`` = new item
    ``j``); ``features``: one row per new item over the model's item feature vocabulary."""

    catalogue: Vocab
    features: SideFeatures


def load_new_items(mf: ModelFile, source: str, read: ReadOptions | None = None) -> NewItems:
    """Read ``--item-table`` and build the new items' features for ``mf``'s model."""
    import polars as pl

    from recli.data.side import FeatureTable, read_feature_table, side_features
    from recli.data.vocab import Vocab

    names = mf.model.feature_names("item") if mf.model.uses_features else None
    if names is None:
        raise ConfigError(f"model {mf.model.name!r} was not trained on item features, so it cannot score new items "
                          "from an --item-table", hint="train a feature model: recli train --model content "
                                                       "--item-features FILE")
    transform = (mf.meta.get("features", {}).get("item") or {}).get("transform")
    if transform is not None:
        table = FeatureTable("item", source, _transformed(source, transform, read))
    else:
        table = read_feature_table(source, "item", read, what=f"--item-table {source}")
    ids = table.frame["id"].unique(maintain_order=True)
    known = mf.items.index(ids) >= 0
    if known.all():
        raise InputError(f"--item-table {source}: all its {ids.len()} items are already in the model's catalogue",
                         hint="--item-table is for new items; the catalogue's items are scored anyway")
    if known.any():
        log.warning(f"--item-table: {int(known.sum())} of its {ids.len()} items are already in the catalogue "
                    f"and are scored as catalogue items")
    new = ids.filter(pl.Series(~known))
    features, unknown = side_features(table, Vocab(new), names=names)
    if unknown:
        log.info(f"--item-table: {unknown} feature values name features the model was not trained on (ignored)")
    empty = int((np.diff(features.matrix.indptr) == 0).sum())
    if empty:
        log.warning(f"--item-table: {empty} new items have no feature the model knows and score 0")
    return NewItems(Vocab(pl.concat([mf.items.ids, new.cast(pl.Utf8).rename("id")])), features)


def _transformed(source: str, transform: dict, read: ReadOptions | None):
    """The raw attribute table through the fitted transform, as ``id, feature, value``.
    It is read as prep read the attribute table (``transform["read"]``: separator,
    encoding, the column names of a table without a header); ``--sep``/``--encoding``
    given to ``recommend`` win."""
    import polars as pl

    from recli.data.features import apply_transform
    from recli.data.io import read_table

    how = transform.get("read") or {}
    columns = how.get("columns")
    raw = read_table(source, None, sep=(read.sep if read else None) or how.get("sep"),
                     quote=read.quote if read else "auto", encoding=(read.encoding if read else None) or how.get("encoding"),
                     has_header=columns is None, columns=columns)
    long = apply_transform(raw, transform)
    return long.select(pl.col(transform["role"]).cast(pl.Utf8).alias("id"), pl.col("feature").cast(pl.Utf8),
                       pl.col("value").cast(pl.Float32))
