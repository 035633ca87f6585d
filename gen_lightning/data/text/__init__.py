"""Text data: a corpus for language models, labelled texts for classifiers, text pairs for seq2seq models.

- ``corpus.py``: ``TextDataModule`` (``data=text | text_hub | text_embedded``), next-token windows of one text
- ``classification.py``: ``TextClassificationDataModule`` (``data=text_classification``); readers in ``labelled.py``
- ``seq2seq.py``: ``Seq2SeqDataModule`` (``data=translation | summarization``); readers in ``parallel.py``, the
  embedded code-summarisation corpus in ``docstrings.py``
- ``tokenizers.py`` (char, byte) and ``subword.py`` (BPE, unigram): the vocabularies every text model carries

The data modules are exported here: configs name them ``gen_lightning.data.text.<Class>``.
"""

from gen_lightning.data.text.classification import TextClassificationDataModule
from gen_lightning.data.text.corpus import TextDataModule
from gen_lightning.data.text.seq2seq import Seq2SeqDataModule

__all__ = ["Seq2SeqDataModule", "TextClassificationDataModule", "TextDataModule"]
