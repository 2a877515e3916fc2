"""The package layering declared in .importlinter holds: an import arrow points down only, and the
features do not use one another. In-process, so the fast tier checks it too."""
import logging
import os

from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_import_graph_keeps_the_declared_layers(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the root package is found from where the config is
    # import-linter configures logging as a program does, disabling every logger already made: put them back.
    loggers = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    disabled = [logger.disabled for logger in loggers]
    try:
        status = lint_imports(config_filename=os.path.join(ROOT, ".importlinter"), no_cache=True, no_logo=True)
    finally:
        for logger, was in zip(loggers, disabled):
            logger.disabled = was
    report = capsys.readouterr().out
    assert status == EXIT_STATUS_SUCCESS, report[-4000:]
    assert "0 broken" in report
