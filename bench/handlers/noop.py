"""The trivial handler the benchmarks invoke: it returns its event."""


def handler(event, context):
    return event
