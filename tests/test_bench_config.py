"""make bench's naive pipeline: mkdocs.yml rewritten to execute in mkdocs, with none of our hooks.

The rewrite is text surgery on mkdocs.yml; a new hook or option there must not leave a config
that mkdocs refuses (a hook left dangling under `plugins:` did, found only by a 20-minute bench).
"""

from __future__ import annotations

import os

import bench
import pagecache
from mkdocs.config import load_config


def test_naive_config_executes_pages_and_has_no_hooks():
    config_file = pagecache.ROOT / "mkdocs.yml"
    naive = bench.write_naive_config(f"mkdocs.test-naive-{os.getpid()}.yml")  # as bench does
    text = naive.read_text()
    try:
        config = load_config(str(naive))  # raises mkdocs' Abort on any config error
    finally:
        naive.unlink()
    assert config["hooks"] == {}
    jupyter = config["plugins"]["mkdocs-jupyter"].config
    assert jupyter["execute"] is True
    assert not [name for name in config["plugins"] if "tools/" in name]
    assert config_file.read_text() != text
