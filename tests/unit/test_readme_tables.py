"""README tables generated from code are current (`make docs` regenerates them)."""

from scripts.readme_tables import README, config_keys_table, render


def test_readme_tables_are_current():
    text = README.read_text()
    assert render(text) == text, "README tables are stale: run `make docs`"


def test_config_table_lists_every_key():
    table = config_keys_table()
    from components.objectives import CONFIG_KEYS

    assert all(f"`{k.name}`" in table for k in CONFIG_KEYS)
