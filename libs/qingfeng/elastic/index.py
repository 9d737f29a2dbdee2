"""Create index families from their templates and roll them over.

``ensure_index`` is called by each service at start for the families it writes. It is idempotent and safe when
several processes start at once: the template is put (overwriting an older version of itself), and the first
concrete index is created with the write alias only when the write alias does not exist yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError, NotFoundError

from qingfeng.elastic.templates import FAMILIES, CjkMode, IndexFamily, IndexNames, analyzer_definition, template_body

__all__ = ["RolloverResult", "delete_family", "detect_cjk_mode", "ensure_index", "rollover"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloverResult:
    """What a rollover request did: whether it rolled over, and the old and new write indices."""

    rolled_over: bool
    old_index: str
    new_index: str
    conditions: dict[str, bool]


async def ensure_index(
    es: AsyncElasticsearch,
    prefix: str,
    family: str | IndexFamily = "posts",
    *,
    shards: int = 1,
    replicas: int = 0,
    cjk: CjkMode | None = None,
) -> IndexNames:
    """Put the family's template and create its first index with the write alias, unless the alias exists.

    Returns the family's names (write alias, read alias …). ``replicas=0`` suits the single-node local stack;
    production passes its own. ``cjk`` picks the Chinese analysis chain; None probes the cluster (``bigram`` when it
    has the CJK filters, else ``unigram``; see ``templates``).
    """
    fam = FAMILIES[family] if isinstance(family, str) else family
    names = IndexNames(prefix, fam.name)
    mode = cjk or await detect_cjk_mode(es)
    await es.indices.put_index_template(**template_body(fam, names, shards=shards, replicas=replicas, cjk=mode))
    if await es.indices.exists_alias(name=names.write_alias):
        await _add_new_fields(es, fam, names)
        return names
    if await es.indices.exists(index=names.write_alias):
        # Something wrote to the alias name before the alias existed and auto-created a plain index: refuse to
        # guess (its mapping is dynamic, not ours); an operator must reindex it.
        raise RuntimeError(f"{names.write_alias} is a concrete index, not an alias; reindex it into {names.pattern}")
    try:
        await es.indices.create(
            index=names.first_index,
            aliases={names.write_alias: {"is_write_index": True}},
            wait_for_active_shards="1",
        )
        _log.info("created index %s with write alias %s", names.first_index, names.write_alias)
    except BadRequestError as err:
        if _error_type(err) != "resource_already_exists_exception":
            raise
        # Another process won the race; make sure the alias is there (it is created with the index, atomically).
        if not await es.indices.exists_alias(name=names.write_alias):
            raise
    return names


async def _add_new_fields(es: AsyncElasticsearch, fam: IndexFamily, names: IndexNames) -> None:
    """Add the family's fields that its existing indices lack (``words``, say): they become indexed for documents
    written from now on. Only missing fields are sent: a field whose definition changed since an index was created
    (``text`` no longer indexed) keeps its old definition there until the index rolls over, which Elasticsearch
    would refuse to change in place, and which must not block the fields that can be added. A refusal is logged
    (an operator reindexes) rather than stopping the start."""
    try:
        current = (await es.indices.get_mapping(index=names.read_alias)).body
    except NotFoundError:
        return
    for index, body in sorted(current.items()):
        have = body.get("mappings", {}).get("properties", {})
        missing = {name: spec for name, spec in fam.properties.items() if name not in have}
        if not missing:
            continue
        try:
            await es.indices.put_mapping(index=index, properties=missing)
            _log.info("index %s: added fields %s", index, ", ".join(sorted(missing)))
        except BadRequestError as err:
            _log.warning("index %s keeps its mapping without %s: %s", index, ", ".join(sorted(missing)), err)


async def detect_cjk_mode(es: AsyncElasticsearch) -> CjkMode:
    """``bigram`` when the cluster has the ``cjk_bigram`` filter (module ``analysis-common``), else ``unigram``."""
    try:
        await es.indices.analyze(**_probe_body("bigram"))
    except BadRequestError:
        _log.warning("cluster has no cjk_bigram filter (no analysis-common module): Chinese is indexed per character")
        return "unigram"
    return "bigram"


def _probe_body(cjk: CjkMode) -> dict[str, Any]:
    definition = analyzer_definition(cjk)
    return {"tokenizer": definition["tokenizer"], "filter": definition["filter"], "text": "受贿"}


async def rollover(
    es: AsyncElasticsearch,
    alias: str,
    *,
    max_docs: int | None = None,
    max_age: str | None = None,
    max_primary_shard_size: str | None = None,
    dry_run: bool = False,
) -> RolloverResult:
    """Roll the write ``alias`` over to a new index when any given condition is met (always, when none is given).

    ``max_age`` and ``max_primary_shard_size`` use Elasticsearch units (``"7d"``, ``"10gb"``). The new index gets
    the family's template (mapping and read alias); the old one keeps both aliases with ``is_write_index: false``.
    """
    conditions: dict[str, Any] = {}
    if max_docs is not None:
        conditions["max_docs"] = max_docs
    if max_age is not None:
        conditions["max_age"] = max_age
    if max_primary_shard_size is not None:
        conditions["max_primary_shard_size"] = max_primary_shard_size
    response = await es.indices.rollover(alias=alias, conditions=conditions or None, dry_run=dry_run)
    body = response.body
    return RolloverResult(
        rolled_over=bool(body.get("rolled_over")),
        old_index=str(body.get("old_index", "")),
        new_index=str(body.get("new_index", "")),
        conditions={str(k): bool(v) for k, v in (body.get("conditions") or {}).items()},
    )


async def delete_family(es: AsyncElasticsearch, names: IndexNames) -> None:
    """Delete every index of the family and its template (tests, demos, resets). Missing pieces are ignored."""
    # Wildcard deletes are refused by default (action.destructive_requires_name): resolve the names first.
    found = await es.indices.get(index=names.pattern, expand_wildcards="all", allow_no_indices=True)
    indices = sorted(found.body)
    if indices:
        await es.options(ignore_status=404).indices.delete(index=indices)
    await es.options(ignore_status=404).indices.delete_index_template(name=names.template)


def _error_type(err: BadRequestError) -> str | None:
    body = err.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            kind = error.get("type")
            return str(kind) if kind is not None else None
    return None
