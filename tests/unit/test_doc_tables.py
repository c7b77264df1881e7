"""Tables in docs/ generated from code are current (`make docs` regenerates them)."""

from components.objectives import CONFIG_KEYS
from scripts.doc_tables import CONFIG_DOC, config_keys_table, render


def test_doc_tables_are_current():
    text = CONFIG_DOC.read_text()
    assert render(text) == text, "docs/config.md tables are stale: run `make docs`"


def test_config_table_lists_every_key():
    table = config_keys_table()
    assert all(f"`{k.name}`" in table for k in CONFIG_KEYS)
