"""vectorlake: keeps a vector search index in step with a fast-changing marketplace catalog.

Importing the package or any of its modules has no side effects: no Spark session, connection or model
is created until a function asks for one.
"""

__version__ = "0.1.0"
