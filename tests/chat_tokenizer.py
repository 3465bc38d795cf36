"""A real byte-level BPE tokenizer with a ChatML template and thinking tokens, trained here in milliseconds.

Budget-forcing tests need a tokenizer that writes English and LaTeX the way real ones do (words, not characters),
knows ``<think>``/``</think>`` and s1's ``<|im_start|>``, and needs no hub.
"""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<pad>"]
CHATML = (
    "{%- for m in messages -%}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
CORPUS = [
    "Let me think about this step by step. First, compute the total number of eggs. Wait, I should check again.",
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins with four.",
    "So she sells 16 - 3 - 4 = 9 eggs, and makes 9 * 2 = 18 dollars. Therefore the final answer is \\boxed{18}.",
    "The answer is (C). Answer: B. Final Answer: 42. **Solution** The sum of the roots is \\frac{3}{4}.",
    "Hmm, maybe I made a mistake. Let's verify: 2 + 2 = 4, and 3 * 5 = 15. Alternatively, consider x^2 - 1 = 0.",
    "answer think user assistant system question problem solution reasoning",
]


def chat_tokenizer() -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(CORPUS * 20, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<pad>", additional_special_tokens=SPECIAL[:4]
    )
    tok.chat_template = CHATML
    return tok
