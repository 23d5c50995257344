"""Code shown in the documentation, included from here by ``literalinclude``
so that the documented code is the code ``test_docs_examples`` runs."""
