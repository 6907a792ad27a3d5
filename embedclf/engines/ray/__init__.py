"""The Ray engine: encode or label a corpus on a pool of Ray actors, on this machine or a cluster.

    driver:  list the input files; Ray tasks read them with embedclf's own reader (``DataOptions.load``)
             and number every row across them (:mod:`.reading`)
    actors:  a pool of workers, each holding one Encoder for its own hardware, checked against the
             driver's cache key (:mod:`.pool`): a batch of (row, text) in, vectors out (:mod:`.encode`),
             or the model's predictions (:mod:`.predict`)
    workers: Parquet shards written to the output directory (:mod:`.shards`)
    driver:  import the actors' vectors into the local embedding cache, a chunk per commit, under its lock

Workers never touch the embedding cache: it is a directory on the driver's machine, and a cache that
many machines wrote to at once would need a lock all of them honour (network file systems do not
reliably give one). Importing this package does not import Ray; :func:`.session.require_ray` says
how to install it.
"""

from embedclf.engines.ray.shards import load_matrix, load_predictions

__all__ = ["load_matrix", "load_predictions"]
