"""The build compiles the message catalogues: bot/locale/*/LC_MESSAGES/kontext.po -> kontext.mo.

The .mo files are not in git; `pip install .`, `pip install -e .` and the Docker build all run
build_py, which writes them next to their .po (so an editable install reads them in place).
The rest of the project's metadata is in pyproject.toml.
"""

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py

LOCALE_DIR = Path(__file__).resolve().parent / "bot" / "locale"


def compile_catalogues() -> None:
    for po_path in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po")):
        with po_path.open("rb") as po_file:
            catalogue = read_po(po_file)
        with po_path.with_suffix(".mo").open("wb") as mo_file:
            write_mo(mo_file, catalogue)


class BuildPyWithCatalogues(build_py):
    def run(self) -> None:
        compile_catalogues()
        super().run()


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildPyWithCatalogues})
