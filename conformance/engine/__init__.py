"""One example, end to end: the harness (reference, artifact, runtime run), the case driver and
its deadline, comparison, the record, reproducers and failure messages. Imports neither pytest nor
a report."""
