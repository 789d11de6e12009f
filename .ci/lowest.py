"""Print pip constraints pinning every dependency kafkahooks declares to the lowest version it
declares (``name>=X`` -> ``name==X``), for the CI job that proves the floors are honest."""

import re
from pathlib import Path

import tomllib

project = tomllib.loads(Path(__file__).resolve().parent.parent.joinpath("pyproject.toml").read_text())["project"]
declared = list(project["dependencies"])
for extra in ("aiokafka", "kafka-python", "broker"):
    declared += project["optional-dependencies"][extra]
for requirement in declared:
    match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement)
    if match:
        print(f"{match.group(1)}=={match.group(3)}")
