/* data/stream.h: synthetic token streams, generated on the fly one document at a time.
 *
 * A stream is a distribution over documents of doc_len tokens (BOS is the loader's business). Its
 * tables (a bigram table, the trigger set) are built once from the config and stream_seed; every
 * document is then drawn from a caller's StRng, so a loader whose whole state is one RNG can give
 * fresh tokens for every batch, never repeated, and resume them bit-identically.
 *
 * Kinds:
 *   bb        Bigram-Backcopy (Guo et al. 2024, arXiv 2410.13835). Symbols follow a bigram table,
 *             except after a trigger: x_t = x_{t-lag} if x_{t-1} is a trigger (lag 2: the token before
 *             the trigger is copied). The first token is drawn from the unigram without triggers.
 *   induction per-document triggers (Bietti et al. 2023, arXiv 2306.00802): each document draws
 *             `triggers` distinct symbols from the whole vocabulary and an output for each; after a
 *             trigger comes its output, elsewhere the bigram table. Every symbol is sometimes a
 *             trigger or an output, so no symbol's value is safe to ignore. With `noise`, a trigger's
 *             successor is drawn from the table instead with that probability (triggers = every symbol
 *             and some noise: a per-document random successor function, learnable only in context).
 *   markov    in-context Markov chains (Edelman et al. 2024, arXiv 2402.11004): each document draws
 *             its own transition table, every row from Dirichlet(alpha) over the V symbols, and its
 *             first token uniformly. The best prediction is the in-context estimate
 *             (n_ab + alpha) / (n_a + V alpha): an induction head's attention over the previous
 *             occurrences of a gives n_ab / n_a, and the prior's V alpha pseudo-counts need attention
 *             that lands on nothing, a sink, in a share V alpha / (n_a + V alpha) of it. It draws its
 *             own tables, so stream_bigram does not apply.
 *   repeat    random text with repeated spans (the data induction heads are measured on): tokens
 *             drawn uniformly from the V symbols, except that after each token a copy starts with
 *             probability trigger_prob: a span of `span` tokens repeats the document from a uniformly
 *             drawn earlier position. Inside a span the next token is fixed by the earlier occurrence
 *             of the current one (an induction head's job); elsewhere nothing in the context helps,
 *             so the head has no key to read and must put its attention where it does no harm.
 *
 * Bigram tables (stream_bigram):
 *   corpus    the byte bigrams counted from a prepared corpus (DIR/train.bin): the symbols are the
 *             corpus's token ids and its BOS; bb's triggers are the `triggers` most frequent tokens
 *   dirichlet each row drawn from Dirichlet(alpha) over all V symbols: no symbol is frequent on
 *             average (uniform marginal); bb's triggers are symbols 0..triggers-1
 *   sparse    each symbol has `successors` random successors with random weights; triggers never
 *             follow through the table, so trigger_prob must place them
 * trigger_prob > 0: after an ordinary token a uniformly drawn trigger (bb: of the fixed set; induction:
 * of the document's) follows with this probability, and bb's table rows are renormalised over the
 * ordinary symbols; 0: triggers occur exactly as often as the table draws them (Guo's setting).
 *
 * Every position gets a query class: STREAM_TRIGGER when the token after it is fixed by the copy rule
 * (markov: when its symbol occurred before in the document, so the context holds evidence about what
 * follows; repeat: inside a span, after its first token), STREAM_ORDINARY otherwise. */
#ifndef SINKTRACE_STREAM_H
#define SINKTRACE_STREAM_H

#include <stdint.h>

#include "../common/util.h"

typedef enum { STREAM_CORPUS = 0, STREAM_BB = 1, STREAM_INDUCTION = 2, STREAM_MARKOV = 3, STREAM_REPEAT = 4 } StreamKind;
typedef enum { BIGRAM_CORPUS = 0, BIGRAM_DIRICHLET = 1, BIGRAM_SPARSE = 2 } BigramKind;
typedef enum { STREAM_ORDINARY = 0, STREAM_TRIGGER = 1, STREAM_CLASSES = 2 } QueryClass;

typedef struct {
    int kind;            /* StreamKind (config key `stream`) */
    int bigram;          /* BigramKind */
    int vocab;           /* symbols of a dirichlet or sparse table (BOS is id vocab) */
    int doc_len;         /* tokens per document, BOS not counted */
    int triggers;
    float trigger_prob;
    int lag;             /* bb: copy distance, >= 2 */
    int successors;      /* sparse: successors per symbol */
    float alpha;         /* dirichlet, markov: concentration of each row */
    float noise;         /* induction: chance that a trigger's successor comes from the table instead */
    int span;            /* repeat: tokens per repeated span */
    uint64_t seed;       /* of the tables */
} StreamConfig;

typedef struct Stream Stream;

/* 1 when the stream's symbols are its own (0..vocab-1, BOS = vocab), 0 when they are the token ids of
 * data_dir's tokenizer (a corpus bigram table) */
int stream_own_symbols(const StreamConfig *c);
/* Builds the tables; corpus_dir is read only by the corpus table. Errors name the config key. */
int stream_open(Stream **s, const StreamConfig *c, const char *corpus_dir, char *err);
void stream_free(Stream *s);
int stream_vocab_size(const Stream *s); /* symbols + BOS */
int stream_bos_id(const Stream *s);
int stream_doc_len(const Stream *s);
uint64_t stream_seed(const Stream *s); /* the config's seed of the tables */
/* is symbol `id` one of bb's fixed triggers */
int stream_is_trigger(const Stream *s, int id);

/* One document: doc_len tokens and their query classes (classes may be NULL). */
void stream_document(const Stream *s, StRng *rng, int *tokens, uint8_t *classes);

#endif
