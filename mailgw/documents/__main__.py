"""`python -m mailgw.documents --worker FD | TASK`: the sandbox worker (mailgw.documents.worker).

An entry of its own so that the worker runs as the module `mailgw.documents.worker`, never as
`__main__`: tasks that import it (the tests' echo of `worker.baseline()`) see its state.
"""

import sys

from mailgw.documents.worker import main

main(sys.argv)
