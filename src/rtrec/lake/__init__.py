"""Publishing closed sessions to a lake shared by many recorders, and reading it back.

A lake is Apache Iceberg tables (pyiceberg) in a SQL catalog on PostgreSQL, with files in a
folder or an S3-compatible bucket (docs/fleet.md). The extra ``rtrec[lake]`` brings its
dependencies; importing this package needs none of them.
"""

from rtrec.lake.config import LAKE_ENV as LAKE_ENV
from rtrec.lake.config import LakeConfig as LakeConfig
from rtrec.lake.config import LakeConfigError as LakeConfigError
from rtrec.lake.config import load_lake_config as load_lake_config

__all__ = ["LAKE_ENV", "LakeConfig", "LakeConfigError", "load_lake_config"]
