"""The task journal: a durable record of every task a server accepted.

The client writes an entry before ``submit()`` returns, updates it when the task's state changes
and when its files are saved; ``client.tasks.unfinished()`` and ``jimeng task resume`` read it
after a crash. :class:`JournalStore` is the interface; :class:`SQLiteJournal` the default store.
"""

from jimeng._journal._recorder import (
    JournalLike,
    JournallingFetcher,
    Recorder,
    configuration_fingerprint,
    open_store,
)
from jimeng._journal._sqlite import SQLiteJournal
from jimeng._journal._store import (
    JournalEntry,
    JournalStore,
    JournalUpdate,
    ResultLink,
    default_home,
    journal_path,
    scrub,
)

__all__ = [
    "JournalEntry",
    "JournalLike",
    "JournalStore",
    "JournalUpdate",
    "JournallingFetcher",
    "Recorder",
    "ResultLink",
    "SQLiteJournal",
    "configuration_fingerprint",
    "default_home",
    "journal_path",
    "open_store",
    "scrub",
]
