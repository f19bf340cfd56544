"""Package definition; metadata and tool settings live in pyproject.toml.

Installed (editable) by `make setup`: `.venv/bin/uv pip install --no-deps -e .`
"""

from setuptools import find_packages, setup

setup(
    name="vectorlake",
    version="0.1.0",
    description="Keeps a vector search index in step with a fast-changing marketplace catalog.",
    python_requires=">=3.11",
    packages=find_packages(include=["vectorlake", "vectorlake.*"]),
    package_data={"vectorlake": ["py.typed"]},
    entry_points={"console_scripts": ["vectorlake = vectorlake.cli:main"]},
)
