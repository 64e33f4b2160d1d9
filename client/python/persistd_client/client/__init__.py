"""Client shells: PersistClient (sync) and AsyncPersistClient (async) over the one core.

The two classes differ only in their send loop; each method is a one-line delegation to the
endpoint defined once in `persistd_client._core.endpoints`.
"""

from persistd_client.client.aio import AsyncPersistClient
from persistd_client.client.sync import PersistClient

__all__ = ["AsyncPersistClient", "PersistClient"]
