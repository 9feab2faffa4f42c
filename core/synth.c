/* The built-in synthetic instruction benchmark: see synth.h for what it is and why. */
#include "synth.h"

#include "data.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))
#define PICK(r, arr) ((arr)[pk_rng_below((r), (uint64_t)COUNT(arr))])

#define TEXT_CAP 1024
#define KEY_CAP 64
#define NAME_CAP 24
/* One item (question form of a fact, operand, word, ...) in HOLDOUT_MOD is reserved for valid/test. */
#define HOLDOUT_MOD 6
/* Draws per record before giving up; every task has thousands of candidates on each side. */
#define MAX_ATTEMPTS 100000

#define N_TOWNS 24
#define N_CREATURES 24
#define N_COUNTRIES 12
#define N_RIVERS 10
#define N_FIRST 32
#define N_SURNAMES 32
#define N_FACTS (N_TOWNS * 3 + N_CREATURES * 3 + N_COUNTRIES * 2)
#define MAX_WORDS 128

/* ---------------------------------------------------------------- word pools */

static const char *const exports_pool[] = {"wool",   "copper",  "salt",  "timber", "cheese", "glass",
                                           "silk",   "tea",     "honey", "iron",   "pottery", "rice",
                                           "olive oil", "paper", "leather", "marble"};
static const char *const colours[] = {"red",  "blue",  "green", "yellow", "orange", "purple",
                                      "grey", "black", "white", "brown",  "silver", "golden"};
static const char *const habitats[] = {"forest", "desert",  "swamp",      "mountains", "caves",
                                       "marshes", "hills", "grasslands", "jungle",    "tundra"};
static const char *const diets[] = {"insects",   "berries", "fish",       "seeds",  "leaves",
                                    "mushrooms", "roots",   "small mice", "nectar", "snails"};
static const char *const currencies[] = {"crown",  "mark",  "florin", "ducat", "shilling", "thaler",
                                         "pound",  "guilder", "dinar", "sol",  "lira",     "kopek"};
static const char *const jobs[] = {"baker",  "carpenter", "sailor", "teacher", "potter",   "weaver",
                                   "miller", "blacksmith", "fisher", "tailor", "doctor",   "painter",
                                   "farmer", "shepherd",  "builder", "cook"};
static const char *const animals[] = {"cat",  "dog", "horse", "goat", "owl",  "wolf",
                                      "bear", "deer", "fox",  "duck", "frog", "mouse"};
static const char *const tools[] = {"hammer", "saw", "drill", "wrench", "chisel",
                                    "shovel", "rake", "axe",  "pliers", "spade"};
static const char *const fruits[] = {"apple", "pear",  "plum",  "cherry", "mango",
                                     "lemon", "grape", "peach", "melon",  "fig"};
static const char *const vegetables[] = {"carrot",  "onion",  "potato", "leek", "cabbage",
                                         "pepper",  "turnip", "bean",   "pea",  "radish"};
static const char *const instruments[] = {"violin", "flute", "drum",  "piano", "guitar",
                                          "harp",   "trumpet", "cello", "banjo", "oboe"};
static const char *const sports[] = {"football", "tennis", "rowing", "cycling", "swimming",
                                     "chess",    "boxing", "hockey", "golf",    "archery"};
static const char *const kitchen[] = {"kettle", "pan",   "spoon", "fork", "knife",
                                      "plate",  "oven",  "bowl",  "whisk", "teapot"};
static const char *const beach[] = {"towel",  "sunscreen", "hat",     "sunglasses", "water bottle",
                                    "umbrella", "sandals", "swimsuit", "book",      "snacks"};
static const char *const farm_animals[] = {"goats", "sheep", "hens", "cows", "horses", "ducks", "pigs", "geese"};
static const char *const trade_goods[] = {"salt", "wheat", "coal", "wool", "flour", "apples",
                                          "nails", "rope", "cloth", "barley", "oil", "sugar"};
static const char *const units[] = {"barrels", "sacks", "crates", "boxes", "bags", "baskets"};
static const char *const market_goods[] = {"apples", "cheese", "eggs",   "bread",   "honey",
                                           "fish",   "potatoes", "onions", "flowers", "wool"};
static const char *const months[] = {"January", "February", "March",     "April",   "May",      "June",
                                     "July",    "August",   "September", "October", "November", "December"};
static const char *const weekdays[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
static const char *const number_words[] = {"zero", "one", "two", "three", "four", "five"};

/* Generated names must not collide with a word the tasks use as a word. */
static const char *const *const all_pools[] = {exports_pool, colours, habitats, diets, currencies, jobs,
                                               animals, tools, fruits, vegetables, instruments, sports,
                                               kitchen, beach, farm_animals, trade_goods, units, market_goods};
static const int all_pool_sizes[] = {COUNT(exports_pool), COUNT(colours), COUNT(habitats), COUNT(diets),
                                     COUNT(currencies), COUNT(jobs), COUNT(animals), COUNT(tools),
                                     COUNT(fruits), COUNT(vegetables), COUNT(instruments), COUNT(sports),
                                     COUNT(kitchen), COUNT(beach), COUNT(farm_animals), COUNT(trade_goods),
                                     COUNT(units), COUNT(market_goods)};

/* ---------------------------------------------------------------- the world */

typedef struct {
    char name[NAME_CAP];
    int river, year, export_;
} Town;
typedef struct {
    char name[NAME_CAP];
    int colour, habitat, diet;
} Creature;
typedef struct {
    char name[NAME_CAP];
    int capital, currency; /* capital: a town index */
} Country;

/* Task ids for the per-task offsets of the index-based hold-out. */
enum { HO_OPEN_QA, HO_WORD_CLASS, HO_ENTITY_CLASS, HO_SUMMARY_SHEET, HO_BRAINSTORM, HO_GREETING,
       HO_DESCRIBE, HO_SEQUENCE, HO_WEEKS, HO_COUNT };

typedef struct {
    Town towns[N_TOWNS];
    Creature creatures[N_CREATURES];
    Country countries[N_COUNTRIES];
    char rivers[N_RIVERS][NAME_CAP];
    char first[N_FIRST][NAME_CAP];
    char surnames[N_SURNAMES][NAME_CAP];
    const char *words[MAX_WORDS]; /* single words for the string tasks */
    int n_words;
    uint64_t salt;          /* for hash-based hold-out */
    int offset[HO_COUNT];   /* for index-based hold-out */
} World;

/* ASCII-only case mapping, so that the bytes written never depend on the process's locale. */
static char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }

static int ascii_casecmp(const char *a, const char *b) {
    for (; *a && ascii_upper(*a) == ascii_upper(*b); a++, b++) {
    }
    return (unsigned char)ascii_upper(*a) - (unsigned char)ascii_upper(*b);
}

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

static uint64_t pair_hash(const char *instruction, const char *context) {
    uint64_t h = fnv1a(FNV_INIT, instruction);
    h ^= 0x1f;
    h *= 0x100000001b3ULL;
    h = fnv1a(h, context);
    return h ? h : 1; /* 0 marks an empty slot of the hash set */
}

/* Item `item` asked in form `form` is held out: for a fixed item the held-out form rotates with
 * the item, so every form is seen in training (on other items). */
static int held_index(const World *w, int task, int item, int form) {
    return (item + form + w->offset[task]) % HOLDOUT_MOD == 0;
}

static int held_hash(const World *w, uint64_t key) { return pk_mix64(key ^ w->salt) % HOLDOUT_MOD == 0; }

static const char *const onsets[] = {"b", "d",  "f",  "g",  "h",  "k",  "l",  "m",  "n", "p", "r", "s",
                                     "t", "v",  "z",  "br", "dr", "gr", "kr", "st", "th", "sh", "tr"};
static const char *const vowels[] = {"a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "ou", "ia"};
static const char *const codas[] = {"", "", "", "n", "r", "l", "s", "m", "th", "nd", "rn"};

typedef enum { NAME_TOWN, NAME_RIVER, NAME_CREATURE, NAME_COUNTRY, NAME_FIRST, NAME_SURNAME } NameStyle;

static int name_taken(const char *name, char (*used)[NAME_CAP], int n_used) {
    for (int i = 0; i < n_used; i++)
        if (!ascii_casecmp(used[i], name)) return 1;
    for (int p = 0; p < COUNT(all_pools); p++)
        for (int i = 0; i < all_pool_sizes[p]; i++)
            if (!ascii_casecmp(all_pools[p][i], name)) return 1;
    return 0;
}

/* A pronounceable fictional name, distinct from every name drawn before it. */
static void make_name(PkRng *r, NameStyle style, char *out, char (*used)[NAME_CAP], int *n_used) {
    static const char *const town_suffix[] = {"", "", "", "ford", "wick", "dale", "mere", "holm", "by", "ton"};
    static const char *const river_end[] = {"a", "o", "e", "is", "en", "ell"};
    static const char *const creature_end[] = {"et", "in", "ow", "ick", "ar", "el", "og", "ul"};
    static const char *const country_end[] = {"ia", "and", "or", "esh", "ara", "eth"};
    static const char *const first_end[] = {"a", "o", "en", "is", "an", "el", ""};
    static const char *const surname_end[] = {"ner", "by", "wood", "ton", "ley", "field", "well", "more"};
    for (;;) {
        char buf[64];
        int syllables = style == NAME_TOWN || style == NAME_COUNTRY ? 2 : 1;
        buf[0] = 0;
        for (int s = 0; s < syllables; s++) {
            strcat(buf, PICK(r, onsets));
            strcat(buf, PICK(r, vowels));
            strcat(buf, PICK(r, codas));
        }
        switch (style) {
        case NAME_TOWN: strcat(buf, PICK(r, town_suffix)); break;
        case NAME_RIVER: strcat(buf, PICK(r, river_end)); break;
        case NAME_CREATURE: strcat(buf, PICK(r, creature_end)); break;
        case NAME_COUNTRY: strcat(buf, PICK(r, country_end)); break;
        case NAME_FIRST: strcat(buf, PICK(r, first_end)); break;
        case NAME_SURNAME: strcat(buf, PICK(r, surname_end)); break;
        }
        size_t len = strlen(buf);
        if (len < 4 || len >= NAME_CAP - 1 || len > 11) continue;
        if (style != NAME_CREATURE) buf[0] = ascii_upper(buf[0]);
        if (name_taken(buf, used, *n_used)) continue;
        memcpy(out, buf, len + 1);
        memcpy(used[(*n_used)++], buf, len + 1);
        return;
    }
}

static void world_build(World *w, uint64_t seed) {
    PkRng r;
    pk_rng_seed(&r, pk_mix64(seed ^ 0x5717c0de00000001ULL));
    memset(w, 0, sizeof *w);
    char used[N_TOWNS + N_CREATURES + N_COUNTRIES + N_RIVERS + N_FIRST + N_SURNAMES][NAME_CAP];
    int n_used = 0;
    for (int i = 0; i < N_RIVERS; i++) make_name(&r, NAME_RIVER, w->rivers[i], used, &n_used);
    for (int i = 0; i < N_TOWNS; i++) {
        Town *t = &w->towns[i];
        make_name(&r, NAME_TOWN, t->name, used, &n_used);
        t->river = (int)pk_rng_below(&r, N_RIVERS);
        t->year = 1100 + (int)pk_rng_below(&r, 800);
        t->export_ = (int)pk_rng_below(&r, COUNT(exports_pool));
    }
    for (int i = 0; i < N_CREATURES; i++) {
        Creature *c = &w->creatures[i];
        make_name(&r, NAME_CREATURE, c->name, used, &n_used);
        c->colour = (int)pk_rng_below(&r, COUNT(colours));
        c->habitat = (int)pk_rng_below(&r, COUNT(habitats));
        c->diet = (int)pk_rng_below(&r, COUNT(diets));
    }
    /* Capitals are distinct towns; every country has its own currency. */
    int town_order[N_TOWNS], cur_order[COUNT(currencies)];
    for (int i = 0; i < N_TOWNS; i++) town_order[i] = i;
    for (int i = 0; i < COUNT(currencies); i++) cur_order[i] = i;
    pk_rng_shuffle_int(&r, town_order, N_TOWNS);
    pk_rng_shuffle_int(&r, cur_order, COUNT(currencies));
    for (int i = 0; i < N_COUNTRIES; i++) {
        Country *k = &w->countries[i];
        make_name(&r, NAME_COUNTRY, k->name, used, &n_used);
        k->capital = town_order[i];
        k->currency = cur_order[i % COUNT(currencies)];
    }
    for (int i = 0; i < N_FIRST; i++) make_name(&r, NAME_FIRST, w->first[i], used, &n_used);
    for (int i = 0; i < N_SURNAMES; i++) make_name(&r, NAME_SURNAME, w->surnames[i], used, &n_used);
    w->salt = pk_rng_u64(&r);
    for (int i = 0; i < HO_COUNT; i++) w->offset[i] = (int)pk_rng_below(&r, HOLDOUT_MOD);
    /* Single words of 3 to 7 letters for the string tasks, in pool order. */
    const char *const *word_pools[] = {animals, fruits, tools, vegetables, colours, instruments, kitchen};
    const int word_sizes[] = {COUNT(animals), COUNT(fruits), COUNT(tools), COUNT(vegetables), COUNT(colours),
                              COUNT(instruments), COUNT(kitchen)};
    for (int p = 0; p < COUNT(word_pools); p++)
        for (int i = 0; i < word_sizes[p]; i++) {
            const char *wd = word_pools[p][i];
            size_t len = strlen(wd);
            int dup = 0;
            for (int k = 0; k < w->n_words; k++) dup |= !strcmp(w->words[k], wd);
            if (len >= 3 && len <= 7 && !strchr(wd, ' ') && !dup && w->n_words < MAX_WORDS) w->words[w->n_words++] = wd;
        }
}

/* ---------------------------------------------------------------- drafting records */

typedef struct {
    char instruction[TEXT_CAP], context[TEXT_CAP], response[TEXT_CAP];
    char key[KEY_CAP];
    int broken; /* a text overflowed or a template named an unknown slot */
} Draft;

typedef struct {
    const char *key, *val;
} Slot;

/* Expands "{name}" from slots into dst; "{^name}" capitalises the value's first letter. */
static void fill(Draft *d, char *dst, const char *tmpl, const Slot *slots, int n_slots) {
    size_t len = 0;
    for (const char *p = tmpl; *p;) {
        const char *val = NULL;
        int cap = 0, literal = 1;
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (end) {
            cap = p[1] == '^';
            const char *k = p + 1 + cap;
            size_t kl = (size_t)(end - k);
            for (int i = 0; i < n_slots; i++)
                if (strlen(slots[i].key) == kl && !strncmp(slots[i].key, k, kl)) val = slots[i].val;
            if (!val) {
                d->broken = 1;
                val = "";
            }
            literal = 0;
        }
        if (literal) {
            if (len + 1 >= TEXT_CAP) {
                d->broken = 1;
                break;
            }
            dst[len++] = *p++;
            continue;
        }
        for (size_t j = 0; val[j]; j++) {
            if (len + 1 >= TEXT_CAP) {
                d->broken = 1;
                break;
            }
            dst[len++] = cap && j == 0 ? ascii_upper(val[j]) : val[j];
        }
        p = end + 1;
    }
    dst[len] = 0;
}

#define FILL(d, field, tmpl, slots) fill((d), (d)->field, (tmpl), (slots), COUNT(slots))

static void set_key(Draft *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_key(Draft *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->key, KEY_CAP, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= KEY_CAP) d->broken = 1;
}

static void itoa_(int v, char *buf) { snprintf(buf, 16, "%d", v); }

static int between(PkRng *r, int lo, int hi) { return lo + (int)pk_rng_below(r, (uint64_t)(hi - lo + 1)); }

static const char *article(const char *noun) { return strchr("aeiouAEIOU", noun[0]) ? "an" : "a"; }

/* A task draws one record on the requested side of the hold-out (heldout 0: train, 1: valid/test).
 * Returns 1, or 0 when no candidate was found in MAX_ATTEMPTS draws. */
typedef int (*TaskFn)(const World *w, PkRng *r, int heldout, Draft *d);

/* ---- open_qa: the fact tables, six question forms and four answer forms per attribute */

typedef struct {
    const char *q[6];
    const char *a[4];
} QaForms;

/* A question about a context: a form drawn from qs, the context from one of its templates, then
 * one of the form's first three questions and one of its answers (draws in this order, which the
 * records of a seed depend on). */
static void fill_qa(Draft *d, PkRng *r, const QaForms *qs, int n_forms, const char *const *ctx, int n_ctx,
                    const Slot *s, int n_slots) {
    const QaForms *q = &qs[pk_rng_below(r, (uint64_t)n_forms)];
    fill(d, d->context, ctx[pk_rng_below(r, (uint64_t)n_ctx)], s, n_slots);
    fill(d, d->instruction, q->q[pk_rng_below(r, 3)], s, n_slots);
    fill(d, d->response, PICK(r, q->a), s, n_slots);
}
#define FILL_QA(d, r, qs, ctx, slots) fill_qa((d), (r), (qs), COUNT(qs), (ctx), COUNT(ctx), (slots), COUNT(slots))

/* The key of a record known by its instruction and context alone. */
static void set_pair_key(Draft *d) {
    snprintf(d->key, KEY_CAP, "pair:%016llx", (unsigned long long)pair_hash(d->instruction, d->context));
}

static const QaForms town_forms[3] = {
    {{"Which river flows through {town}?", "What river runs through the town of {town}?",
      "Name the river that {town} lies on.", "{town} is built on which river?", "On which river is {town} located?",
      "Tell me the river of {town}."},
     {"{town} lies on the {river} River.", "The {river} River flows through {town}.", "It is the {river} River.",
      "The {river}."}},
    {{"When was {town} founded?", "In what year was {town} founded?", "What is the founding year of {town}?",
      "How old is the town of {town}? Give its founding year.", "Tell me when the town of {town} was founded.",
      "{town} was founded in which year?"},
     {"{town} was founded in {year}.", "It was founded in {year}.", "In {year}.", "The town of {town} dates from {year}."}},
    {{"What is the main export of {town}?", "What does {town} mainly export?",
      "Which product is {town} known for exporting?", "What goods does the town of {town} sell abroad most?",
      "Name the chief export of {town}.", "What is {town} famous for trading?"},
     {"The main export of {town} is {export}.", "{town} mainly exports {export}.", "It exports {export}.",
      "{^export}."}},
};

static const QaForms creature_forms[3] = {
    {{"What colour is the {c}?", "What is the colour of a {c}?", "Describe the colour of the {c}.",
      "Which colour does the {c} have?", "Tell me the colour of a {c}.", "What colour are {c}s?"},
     {"The {c} is {colour}.", "It is {colour}.", "A {c} is {colour} in colour.", "{^colour}."}},
    {{"Where does the {c} live?", "What is the habitat of the {c}?", "In what kind of place can you find a {c}?",
      "Where would I find a {c}?", "Name the habitat of the {c}.", "Which habitat does the {c} prefer?"},
     {"The {c} lives in the {habitat}.", "It lives in the {habitat}.", "You can find the {c} in the {habitat}.",
      "In the {habitat}."}},
    {{"What does the {c} eat?", "What is the diet of the {c}?", "What food does a {c} live on?",
      "What do {c}s feed on?", "Tell me what the {c} eats.", "Name the main food of the {c}."},
     {"The {c} eats {diet}.", "It feeds on {diet}.", "A {c} lives mostly on {diet}.", "{^diet}."}},
};

static const QaForms country_forms[2] = {
    {{"What is the capital of {country}?", "Which city is the capital of {country}?", "Name the capital of {country}.",
      "Where is the seat of government of {country}?", "Tell me the capital city of {country}.",
      "{country} has which capital?"},
     {"The capital of {country} is {capital}.", "{capital} is the capital of {country}.", "It is {capital}.",
      "{capital}."}},
    {{"What currency is used in {country}?", "What is the currency of {country}?",
      "What money do people use in {country}?", "Name the currency of {country}.", "Which coin is used in {country}?",
      "Tell me the currency of {country}."},
     {"{country} uses the {currency}.", "The currency of {country} is the {currency}.",
      "People in {country} pay with the {currency}.", "The {currency}."}},
};

static int gen_open_qa(const World *w, PkRng *r, int heldout, Draft *d) {
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int f = (int)pk_rng_below(r, N_FACTS), form = (int)pk_rng_below(r, 6);
        if (held_index(w, HO_OPEN_QA, f, form) != heldout) continue;
        const QaForms *qa;
        char year[16];
        if (f < N_TOWNS * 3) {
            const Town *t = &w->towns[f / 3];
            qa = &town_forms[f % 3];
            itoa_(t->year, year);
            Slot s[] = {{"town", t->name}, {"river", w->rivers[t->river]}, {"year", year},
                        {"export", exports_pool[t->export_]}};
            FILL(d, instruction, qa->q[form], s);
            FILL(d, response, PICK(r, qa->a), s);
        } else if (f < N_TOWNS * 3 + N_CREATURES * 3) {
            int g = f - N_TOWNS * 3;
            const Creature *c = &w->creatures[g / 3];
            qa = &creature_forms[g % 3];
            Slot s[] = {{"c", c->name}, {"colour", colours[c->colour]}, {"habitat", habitats[c->habitat]},
                        {"diet", diets[c->diet]}};
            FILL(d, instruction, qa->q[form], s);
            FILL(d, response, PICK(r, qa->a), s);
        } else {
            int g = f - N_TOWNS * 3 - N_CREATURES * 3;
            const Country *k = &w->countries[g / 2];
            qa = &country_forms[g % 2];
            Slot s[] = {{"country", k->name}, {"capital", w->towns[k->capital].name},
                        {"currency", currencies[k->currency]}};
            FILL(d, instruction, qa->q[form], s);
            FILL(d, response, PICK(r, qa->a), s);
        }
        set_key(d, "fact:%d:%d", f, form);
        return 1;
    }
    return 0;
}

/* ---- closed_qa: a short paragraph drawn per record; the answer is in it */

static void person_name(const World *w, PkRng *r, char *full, const char **first) {
    *first = w->first[pk_rng_below(r, N_FIRST)];
    snprintf(full, 2 * NAME_CAP, "%s %s", *first, w->surnames[pk_rng_below(r, N_SURNAMES)]);
}

static int gen_closed_qa(const World *w, PkRng *r, int heldout, Draft *d) {
    (void)heldout; /* contexts are fresh draws; the pair check keeps them out of train */
    char full[2 * NAME_CAP], n1[16], n2[16], n3[16];
    const char *first;
    int family = (int)pk_rng_below(r, 3);
    if (family == 0) { /* a life */
        person_name(w, r, full, &first);
        int t1 = (int)pk_rng_below(r, N_TOWNS), t2 = (t1 + 1 + (int)pk_rng_below(r, N_TOWNS - 1)) % N_TOWNS;
        itoa_(between(r, 1780, 1899), n1);
        itoa_(between(r, 2, 30), n2);
        itoa_(between(r, 2, 19), n3);
        const char *job = PICK(r, jobs);
        Slot s[] = {{"name", full},  {"first", first}, {"born", w->towns[t1].name}, {"year", n1},
                    {"job", job},    {"years", n2},    {"moved", w->towns[t2].name}, {"count", n3},
                    {"animals", PICK(r, farm_animals)}};
        static const char *const ctx[] = {
            "{name} was born in {born} in {year}. {first} worked as a {job} for {years} years. Later {first} moved "
            "to {moved}, where {first} kept {count} {animals}.",
            "Born in {born} in {year}, {name} spent {years} years working as a {job}. After that, {first} moved to "
            "{moved} and kept {count} {animals} there."};
        static const QaForms qs[6] = {
            {{"Where was {name} born?", "In which town was {name} born?", "What is the birthplace of {name}?"},
             {"{name} was born in {born}.", "In {born}.", "{first} was born in {born}.", "{born}."}},
            {{"In what year was {name} born?", "When was {name} born?", "What year was {first} born in?"},
             {"{name} was born in {year}.", "In {year}.", "{first} was born in {year}.", "{year}."}},
            {{"What was {first}'s job?", "What did {name} work as?", "What was the occupation of {name}?"},
             {"{first} worked as a {job}.", "{name} was a {job}.", "A {job}.", "{^job}."}},
            {{"For how many years did {first} work as a {job}?", "How long did {name} work as a {job}?",
              "How many years was {first} a {job}?"},
             {"{first} worked as a {job} for {years} years.", "For {years} years.", "{years} years.",
              "{first} was a {job} for {years} years."}},
            {{"Where did {name} move later?", "To which town did {first} move?", "Where did {first} live later?"},
             {"{first} moved to {moved}.", "To {moved}.", "{name} later moved to {moved}.", "{moved}."}},
            {{"How many {animals} did {first} keep?", "How many {animals} did {name} have in {moved}?",
              "What number of {animals} did {first} keep?"},
             {"{first} kept {count} {animals}.", "{count} {animals}.", "{count}.", "{first} had {count} {animals}."}},
        };
        FILL_QA(d, r, qs, ctx, s);
    } else if (family == 1) { /* a voyage */
        static const char *const ship_adj[] = {"Silver", "Red", "Swift", "Morning", "Northern", "Golden", "Quiet", "Brave"};
        static const char *const ship_noun[] = {"Gull", "Star", "Wave", "Heron", "Lantern", "Crown", "Arrow", "Whale"};
        char ship[48];
        snprintf(ship, sizeof ship, "%s %s", PICK(r, ship_adj), PICK(r, ship_noun));
        int t1 = (int)pk_rng_below(r, N_TOWNS), t2 = (t1 + 1 + (int)pk_rng_below(r, N_TOWNS - 1)) % N_TOWNS;
        itoa_(between(r, 8, 90), n1);
        itoa_(between(r, 3, 40), n2);
        Slot s[] = {{"ship", ship},        {"from", w->towns[t1].name}, {"to", w->towns[t2].name},
                    {"day", PICK(r, weekdays)}, {"month", PICK(r, months)}, {"sailors", n1},
                    {"days", n2},          {"cargo", PICK(r, trade_goods)}};
        static const char *const ctx[] = {
            "The ship {ship} left {from} on a {day} in {month} with {sailors} sailors on board. After {days} days at "
            "sea it reached {to}, carrying {cargo}.",
            "On a {day} in {month}, the {ship} sailed from {from} with a crew of {sailors}. It carried {cargo} and "
            "arrived in {to} {days} days later."};
        static const QaForms qs[5] = {
            {{"Where did the {ship} leave from?", "From which port did the {ship} sail?", "Where did the voyage start?"},
             {"The {ship} left from {from}.", "From {from}.", "It sailed from {from}.", "{from}."}},
            {{"How many sailors were on the {ship}?", "How large was the crew of the {ship}?",
              "How many people sailed on the ship?"},
             {"There were {sailors} sailors on board.", "{sailors} sailors.", "The crew had {sailors} sailors.",
              "{sailors}."}},
            {{"How many days did the voyage take?", "How long was the {ship} at sea?",
              "For how many days did the {ship} sail?"},
             {"The voyage took {days} days.", "{days} days.", "It was at sea for {days} days.",
              "The {ship} sailed for {days} days."}},
            {{"Where did the {ship} arrive?", "Which town did the ship reach?", "What was the destination of the {ship}?"},
             {"The {ship} arrived in {to}.", "In {to}.", "It reached {to}.", "{to}."}},
            {{"What did the {ship} carry?", "What was the cargo of the ship?", "What goods were on the {ship}?"},
             {"The {ship} carried {cargo}.", "{^cargo}.", "Its cargo was {cargo}.", "It carried {cargo}."}},
        };
        FILL_QA(d, r, qs, ctx, s);
    } else { /* a shop */
        static const char *const shops[] = {"bakery", "bookshop", "tea house", "pharmacy", "flower shop", "toy shop"};
        person_name(w, r, full, &first);
        int open_h = between(r, 6, 10), close_h = between(r, 4, 9);
        itoa_(open_h, n1);
        itoa_(close_h, n2);
        itoa_(between(r, 1850, 1999), n3);
        const char *town = w->towns[pk_rng_below(r, N_TOWNS)].name;
        Slot s[] = {{"shop", PICK(r, shops)}, {"town", town}, {"open", n1}, {"close", n2}, {"since", n3},
                    {"owner", full}, {"first", first}, {"closed", PICK(r, weekdays)}};
        static const char *const ctx[] = {
            "The {shop} in {town} opens at {open} in the morning and closes at {close} in the evening. It is "
            "closed on {closed}. The owner, {owner}, has run it since {since}.",
            "{owner} has owned the {shop} in {town} since {since}. The shop opens at {open} in the morning, closes "
            "at {close} in the evening and does not open on {closed}."};
        static const QaForms qs[5] = {
            {{"When does the {shop} open?", "At what time does the shop open in the morning?",
              "What is the opening time of the {shop}?"},
             {"It opens at {open} in the morning.", "At {open}.", "The {shop} opens at {open} in the morning.",
              "{open} in the morning."}},
            {{"When does the {shop} close?", "At what time does the shop close?", "What is the closing time of the {shop}?"},
             {"It closes at {close} in the evening.", "At {close}.", "The {shop} closes at {close} in the evening.",
              "{close} in the evening."}},
            {{"Who owns the {shop}?", "Who is the owner of the shop?", "Who runs the {shop} in {town}?"},
             {"{owner} owns it.", "The owner is {owner}.", "{owner}.", "It is run by {owner}."}},
            {{"Since when has the shop been run by its owner?", "Since what year has {owner} owned the {shop}?",
              "How long has {first} had the shop? Give the year."},
             {"Since {since}.", "{owner} has run it since {since}.", "{since}.", "The owner took it over in {since}."}},
            {{"On which day is the {shop} closed?", "Which day does the shop not open?", "When is the {shop} closed?"},
             {"It is closed on {closed}.", "On {closed}.", "{closed}.", "The {shop} is closed on {closed}."}},
        };
        FILL_QA(d, r, qs, ctx, s);
    }
    set_pair_key(d);
    return 1;
}

/* ---- classification: parity (operand held out), word groups, entity types, review sentiment */

static int gen_classification(const World *w, PkRng *r, int heldout, Draft *d) {
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int kind = (int)pk_rng_below(r, 4);
        if (kind == 0) { /* parity: the number itself is the operand */
            int n = between(r, 1, 999);
            if (held_hash(w, 0x9a1000000ULL + (uint64_t)n) != heldout) continue;
            char ns[16];
            itoa_(n, ns);
            Slot s[] = {{"n", ns}, {"kind", n % 2 ? "odd" : "even"}};
            static const char *const q[] = {"Is {n} an even or an odd number?", "Is the number {n} even or odd?",
                                            "Classify {n} as even or odd."};
            static const char *const a[] = {"{n} is {kind}.", "It is {kind}.", "{^kind}.", "The number {n} is {kind}."};
            FILL(d, instruction, PICK(r, q), s);
            FILL(d, response, PICK(r, a), s);
            set_key(d, "num:%d", n);
            return 1;
        }
        if (kind == 1) { /* which group a word belongs to */
            const char *const *pools[] = {animals, fruits, tools, colours};
            const int sizes[] = {COUNT(animals), COUNT(fruits), COUNT(tools), COUNT(colours)};
            static const char *const group[] = {"an animal", "a fruit", "a tool", "a colour"};
            int p = (int)pk_rng_below(r, 4), i = (int)pk_rng_below(r, (uint64_t)sizes[p]);
            static const char *const q[] = {
                "Which group does the word '{w}' belong to: animal, fruit, tool or colour?",
                "Classify the word '{w}' as an animal, a fruit, a tool or a colour.",
                "Is '{w}' an animal, a fruit, a tool or a colour?",
                "Classify the following word as an animal, a fruit, a tool or a colour.",
            };
            int form = (int)pk_rng_below(r, COUNT(q));
            if (held_index(w, HO_WORD_CLASS, p * 16 + i, form) != heldout) continue;
            Slot s[] = {{"w", pools[p][i]}, {"group", group[p]}, {"bare", group[p] + (group[p][1] == 'n' ? 3 : 2)}};
            static const char *const a[] = {"{^w} is {group}.", "It is {group}.", "{^bare}.", "The word {w} names {group}."};
            FILL(d, instruction, q[form], s);
            if (form == 3) FILL(d, context, "{w}", s);
            FILL(d, response, PICK(r, a), s);
            set_key(d, "wordgroup:%d:%d:%d", p, i, form);
            return 1;
        }
        if (kind == 2) { /* what kind of thing a name from the world is */
            int e = (int)pk_rng_below(r, N_TOWNS + N_RIVERS + N_CREATURES + N_COUNTRIES);
            const char *name, *type;
            char river[NAME_CAP + 8];
            if (e < N_TOWNS) {
                name = w->towns[e].name;
                type = "a town";
            } else if (e < N_TOWNS + N_RIVERS) {
                snprintf(river, sizeof river, "the %s", w->rivers[e - N_TOWNS]);
                name = river;
                type = "a river";
            } else if (e < N_TOWNS + N_RIVERS + N_CREATURES) {
                name = w->creatures[e - N_TOWNS - N_RIVERS].name;
                type = "a creature";
            } else {
                name = w->countries[e - N_TOWNS - N_RIVERS - N_CREATURES].name;
                type = "a country";
            }
            static const char *const q[] = {"Is {name} a town, a river, a creature or a country?",
                                            "What kind of thing is {name}: a town, a river, a creature or a country?",
                                            "Classify {name} as a town, a river, a creature or a country."};
            int form = (int)pk_rng_below(r, COUNT(q));
            if (held_index(w, HO_ENTITY_CLASS, e, form) != heldout) continue;
            Slot s[] = {{"name", name}, {"type", type}, {"bare", type + 2}};
            static const char *const a[] = {"{^name} is {type}.", "It is {type}.", "{^bare}."};
            FILL(d, instruction, q[form], s);
            FILL(d, response, PICK(r, a), s);
            set_key(d, "entity:%d:%d", e, form);
            return 1;
        }
        /* sentiment of a short review */
        static const char *const items[] = {"soup", "hotel room", "film", "concert", "bread",
                                            "service", "book", "train ride", "pizza", "museum"};
        static const char *const good[] = {"wonderful", "excellent", "lovely", "fantastic", "superb", "great"};
        static const char *const bad[] = {"terrible", "awful", "disappointing", "poor", "dreadful", "bad"};
        static const char *const openers[] = {"We went there last week and", "I tried it on Saturday and",
                                              "Honestly,", "To be fair,", "As expected,", "This time"};
        static const char *const good_tail[] = {"I will come back.", "Highly recommended.", "We loved every minute.",
                                                "Worth every penny."};
        static const char *const bad_tail[] = {"Never again.", "I want my money back.", "What a waste of time.",
                                               "I would not recommend it."};
        int positive = (int)pk_rng_below(r, 2);
        int it = (int)pk_rng_below(r, COUNT(items)), ad = (int)pk_rng_below(r, 6), op = (int)pk_rng_below(r, 6),
            tl = (int)pk_rng_below(r, 4);
        uint64_t key = ((((uint64_t)positive * 16 + (uint64_t)it) * 8 + (uint64_t)ad) * 8 + (uint64_t)op) * 8 + (uint64_t)tl;
        if (held_hash(w, 0x5e7000000ULL + key) != heldout) continue;
        Slot s[] = {{"opener", openers[op]}, {"item", items[it]}, {"adj", positive ? good[ad] : bad[ad]},
                    {"tail", positive ? good_tail[tl] : bad_tail[tl]}, {"label", positive ? "positive" : "negative"}};
        static const char *const q[] = {"Is this review positive or negative?", "Classify the sentiment of the review.",
                                        "What is the sentiment of the following review: positive or negative?"};
        static const char *const a[] = {"{^label}.", "The review is {label}.", "It is {label}.",
                                        "The sentiment is {label}."};
        FILL(d, instruction, PICK(r, q), s);
        FILL(d, context, "{opener} the {item} was {adj}. {tail}", s);
        FILL(d, response, PICK(r, a), s);
        set_key(d, "review:%d", (int)key);
        return 1;
    }
    return 0;
}

/* ---- information_extraction: pull a date, name, quantity or place out of one sentence */

static int gen_extraction(const World *w, PkRng *r, int heldout, Draft *d) {
    (void)heldout;
    char full[2 * NAME_CAP], day[16], year[16], qty[16];
    const char *first;
    person_name(w, r, full, &first);
    itoa_(between(r, 1, 28), day);
    itoa_(between(r, 1700, 1899), year);
    itoa_(between(r, 2, 500), qty);
    Slot s[] = {{"name", full}, {"day", day}, {"month", PICK(r, months)}, {"year", year}, {"qty", qty},
                {"unit", PICK(r, units)}, {"good", PICK(r, trade_goods)}, {"town", w->towns[pk_rng_below(r, N_TOWNS)].name}};
    static const char *const ctx[] = {
        "On {day} {month} {year}, {name} delivered {qty} {unit} of {good} to {town}.",
        "{name} sold {qty} {unit} of {good} at the market in {town} on {day} {month} {year}.",
        "In {town}, on {day} {month} {year}, {name} bought {qty} {unit} of {good}.",
    };
    static const QaForms qs[5] = {
        {{"Extract the date from the sentence.", "What date is mentioned in this text?", "On what date did this happen?"},
         {"{day} {month} {year}", "The date is {day} {month} {year}.", "It happened on {day} {month} {year}.",
          "On {day} {month} {year}."}},
        {{"Who is the person mentioned in the text?", "Extract the name of the person.",
          "Which person does the sentence talk about?"},
         {"{name}", "The person is {name}.", "The sentence mentions {name}.", "It is about {name}."}},
        {{"How much {good} is mentioned?", "Extract the quantity of goods.", "What amount of {good} does the sentence mention?"},
         {"{qty} {unit} of {good}", "{qty} {unit}.", "The quantity is {qty} {unit} of {good}.", "It mentions {qty} {unit}."}},
        {{"Where did this take place?", "Extract the town named in the text.", "Which town is mentioned?"},
         {"In {town}.", "{town}", "It took place in {town}.", "The town is {town}."}},
        {{"Extract the name, the date and the town as a list.", "List the person, date and place from the sentence.",
          "Pull out the name, date and town."},
         {"Name: {name}\nDate: {day} {month} {year}\nTown: {town}", "- {name}\n- {day} {month} {year}\n- {town}",
          "name: {name}; date: {day} {month} {year}; town: {town}", "Name: {name}, date: {day} {month} {year}, town: {town}."}},
    };
    FILL_QA(d, r, qs, ctx, s);
    set_pair_key(d);
    return 1;
}

/* ---- summarization: facts to one sentence, a paragraph to one sentence, a creature's fact sheet */

static int gen_summarization(const World *w, PkRng *r, int heldout, Draft *d) {
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int kind = (int)pk_rng_below(r, 3);
        if (kind == 0) { /* a person's facts */
            char full[2 * NAME_CAP], age[16];
            const char *first;
            person_name(w, r, full, &first);
            itoa_(between(r, 19, 80), age);
            const char *job = PICK(r, jobs);
            Slot s[] = {{"name", full}, {"job", job}, {"town", w->towns[pk_rng_below(r, N_TOWNS)].name}, {"age", age}};
            static const char *const ctx[] = {"Name: {name}\nJob: {job}\nTown: {town}\nAge: {age}",
                                              "- name: {name}\n- age: {age}\n- job: {job}\n- lives in: {town}"};
            static const char *const q[] = {"Turn these facts into one sentence.",
                                            "Summarize the facts below in a single sentence.",
                                            "Write one sentence that contains all of these facts.",
                                            "Combine the following details into a sentence."};
            static const char *const a[] = {"{name} is a {age}-year-old {job} from {town}.",
                                            "{name}, aged {age}, works as a {job} in {town}.",
                                            "{name} is {age} years old and works as a {job} in {town}.",
                                            "A {job} from {town}, {name} is {age} years old."};
            FILL(d, instruction, PICK(r, q), s);
            FILL(d, context, PICK(r, ctx), s);
            FILL(d, response, PICK(r, a), s);
        } else if (kind == 1) { /* a market paragraph */
            char h1[16], h2[16];
            itoa_(between(r, 5, 9), h1);
            itoa_(between(r, 11, 14), h2);
            int g1 = (int)pk_rng_below(r, COUNT(market_goods));
            int g2 = (g1 + 1 + (int)pk_rng_below(r, COUNT(market_goods) - 1)) % COUNT(market_goods);
            Slot s[] = {{"town", w->towns[pk_rng_below(r, N_TOWNS)].name}, {"day", PICK(r, weekdays)}, {"h1", h1},
                        {"h2", h2}, {"g1", market_goods[g1]}, {"g2", market_goods[g2]}};
            static const char *const ctx[] = {
                "The market in {town} opens at {h1} o'clock every {day}. Farmers bring {g1} and {g2} from nearby "
                "villages. Many visitors come from far away. The market closes at {h2} o'clock.",
                "Every {day} at {h1} o'clock, the market of {town} opens its gates. The stalls are full of {g1} and "
                "{g2}. By {h2} o'clock everything is packed away again."};
            static const char *const q[] = {"Summarize this paragraph in one sentence.",
                                            "Give a one-sentence summary of the text.", "Briefly summarize the passage."};
            static const char *const a[] = {
                "Every {day}, the {town} market sells {g1} and {g2} from {h1} to {h2} o'clock.",
                "The market in {town} opens on {day}s from {h1} to {h2} o'clock and sells {g1} and {g2}.",
                "On {day}s, farmers sell {g1} and {g2} at the {town} market between {h1} and {h2} o'clock."};
            FILL(d, instruction, PICK(r, q), s);
            FILL(d, context, PICK(r, ctx), s);
            FILL(d, response, PICK(r, a), s);
        } else { /* a creature's fact sheet: few distinct sheets, so the form is held out */
            int c = (int)pk_rng_below(r, N_CREATURES), layout = (int)pk_rng_below(r, 2);
            static const char *const q[] = {"Turn this fact sheet into one sentence.",
                                            "Describe the animal in one sentence using these facts.",
                                            "Summarize the fact sheet in a single sentence."};
            int form = (int)pk_rng_below(r, COUNT(q));
            if (held_index(w, HO_SUMMARY_SHEET, c * 2 + layout, form) != heldout) continue;
            const Creature *cr = &w->creatures[c];
            Slot s[] = {{"c", cr->name}, {"colour", colours[cr->colour]}, {"habitat", habitats[cr->habitat]},
                        {"diet", diets[cr->diet]}};
            static const char *const ctx[] = {"Animal: {c}\nColour: {colour}\nHabitat: {habitat}\nDiet: {diet}",
                                              "- {c}\n- {colour}\n- lives in the {habitat}\n- eats {diet}"};
            static const char *const a[] = {"The {c} is a {colour} animal that lives in the {habitat} and eats {diet}.",
                                            "Found in the {habitat}, the {colour} {c} feeds on {diet}.",
                                            "The {c} is {colour}, lives in the {habitat} and eats {diet}."};
            FILL(d, instruction, q[form], s);
            FILL(d, context, ctx[layout], s);
            FILL(d, response, PICK(r, a), s);
            set_key(d, "sheet:%d:%d:%d", c, layout, form);
            return 1;
        }
        set_pair_key(d);
        return 1;
    }
    return 0;
}

/* ---- rewriting: change tense, make a note formal */

typedef struct {
    const char *present, *past;
    const char *objects[3];
} Verb;

static const Verb verbs[] = {
    {"carries", "carried", {"the basket", "a heavy box", "the water"}},
    {"writes", "wrote", {"a letter", "a short poem", "the report"}},
    {"sings", "sang", {"a song", "a quiet tune", "an old song"}},
    {"eats", "ate", {"an apple", "the bread", "a bowl of soup"}},
    {"builds", "built", {"a fence", "a small boat", "a wall"}},
    {"finds", "found", {"a coin", "the key", "an old map"}},
    {"opens", "opened", {"the door", "the window", "a new shop"}},
    {"paints", "painted", {"the fence", "a picture", "the kitchen"}},
    {"sells", "sold", {"fresh bread", "the old cart", "apples"}},
    {"reads", "read", {"a book", "the newspaper", "a long letter"}},
    {"cooks", "cooked", {"dinner", "a large meal", "the soup"}},
    {"cleans", "cleaned", {"the room", "the windows", "the kitchen"}},
    {"teaches", "taught", {"the children", "a music class", "the new pupils"}},
    {"catches", "caught", {"a fish", "the ball", "the early train"}},
    {"brings", "brought", {"fresh milk", "a gift", "the tools"}},
    {"drinks", "drank", {"a cup of tea", "cold water", "warm milk"}},
    {"buys", "bought", {"a new hat", "some bread", "a ticket"}},
    {"feeds", "fed", {"the ducks", "the horses", "the cat"}},
};

static int gen_rewriting(const World *w, PkRng *r, int heldout, Draft *d) {
    (void)heldout;
    char full[2 * NAME_CAP];
    const char *first;
    person_name(w, r, full, &first);
    if (pk_rng_below(r, 3) < 2) { /* tense */
        static const char *const subjects[] = {"The farmer", "My sister", "The old man", "Our teacher",
                                               "The baker", "{first}", "The little boy", "My neighbour"};
        static const char *const times[] = {"every morning", "on Sundays", "after school", "in the evening",
                                            "every day", "at noon", "before breakfast", "twice a week"};
        const Verb *v = &verbs[pk_rng_below(r, COUNT(verbs))];
        int to_past = (int)pk_rng_below(r, 2);
        char subject[TEXT_CAP]; /* fill() writes up to TEXT_CAP bytes */
        Slot s0[] = {{"first", first}};
        Draft tmp = {0};
        fill(&tmp, subject, PICK(r, subjects), s0, 1);
        Slot s[] = {{"subject", subject}, {"now", v->present}, {"then", v->past},
                    {"object", v->objects[pk_rng_below(r, 3)]}, {"time", PICK(r, times)},
                    {"tense", to_past ? "past" : "present"}};
        static const char *const q[] = {"Rewrite this sentence in the {tense} tense.",
                                        "Change the sentence to the {tense} tense.",
                                        "Put the following sentence into the {tense} tense."};
        static const char *const a_past[] = {"{subject} {then} {object} {time}.", "Past tense: {subject} {then} {object} {time}.",
                                             "In the past tense: {subject} {then} {object} {time}.",
                                             "Here is the sentence in the past tense: {subject} {then} {object} {time}."};
        static const char *const a_present[] = {"{subject} {now} {object} {time}.",
                                                "Present tense: {subject} {now} {object} {time}.",
                                                "In the present tense: {subject} {now} {object} {time}.",
                                                "Here is the sentence in the present tense: {subject} {now} {object} {time}."};
        FILL(d, instruction, PICK(r, q), s);
        FILL(d, context, to_past ? "{subject} {now} {object} {time}." : "{subject} {then} {object} {time}.", s);
        FILL(d, response, to_past ? PICK(r, a_past) : PICK(r, a_present), s);
        d->broken |= tmp.broken;
    } else { /* formal */
        static const char *const docs[] = {"report", "invoice", "slides", "schedule", "contract", "notes"};
        static const char *const events[] = {"meeting", "lunch", "lesson", "rehearsal", "interview"};
        Slot s[] = {{"first", first}, {"doc", PICK(r, docs)}, {"day", PICK(r, weekdays)}, {"event", PICK(r, events)}};
        static const QaForms notes[3] = {
            {{"hey {first}, can u send me the {doc} by {day}? thx"},
             {"Dear {first}, could you please send me the {doc} by {day}? Thank you.",
              "Hello {first}, would you kindly send me the {doc} by {day}? Many thanks.",
              "Dear {first}, please send me the {doc} by {day}. Thank you in advance."}},
            {{"{first}!! the {event} is moved to {day}, dont be late"},
             {"Dear {first}, the {event} has been moved to {day}. Please do not be late.",
              "Hello {first}, please note that the {event} is now on {day}. Kindly be on time.",
              "Dear {first}, I would like to inform you that the {event} has moved to {day}. Please be punctual."}},
            {{"yo {first}, gonna be late for the {event} on {day}, sorry"},
             {"Dear {first}, I will be late for the {event} on {day}. I apologise.",
              "Hello {first}, I am sorry, but I will arrive late to the {event} on {day}.",
              "Dear {first}, please accept my apologies: I will be late for the {event} on {day}."}},
        };
        static const char *const q[] = {"Make this message more formal.", "Rewrite the message in a polite, formal tone.",
                                        "Turn this informal note into a formal one."};
        const QaForms *n = &notes[pk_rng_below(r, 3)];
        FILL(d, instruction, PICK(r, q), s);
        FILL(d, context, n->q[0], s);
        FILL(d, response, n->a[pk_rng_below(r, 3)], s);
    }
    set_pair_key(d);
    return 1;
}

/* ---- brainstorming: name a few things of a kind; any order, several layouts */

typedef struct {
    const char *label;
    const char *const *pool;
    int size;
} Kind;

static int gen_brainstorming(const World *w, PkRng *r, int heldout, Draft *d) {
    const Kind kinds[] = {{"fruits", fruits, COUNT(fruits)},
                          {"vegetables", vegetables, COUNT(vegetables)},
                          {"animals", animals, COUNT(animals)},
                          {"colours", colours, COUNT(colours)},
                          {"tools", tools, COUNT(tools)},
                          {"musical instruments", instruments, COUNT(instruments)},
                          {"sports", sports, COUNT(sports)},
                          {"jobs", jobs, COUNT(jobs)},
                          {"kitchen items", kitchen, COUNT(kitchen)},
                          {"things to take to the beach", beach, COUNT(beach)}};
    static const char *const q[] = {"List {k} {kind}.", "Name {k} {kind}.", "Give me {k} examples of {kind}.",
                                    "What are {k} {kind}?", "Can you think of {k} {kind}?"};
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int kd = (int)pk_rng_below(r, COUNT(kinds)), k = between(r, 2, 4), form = (int)pk_rng_below(r, COUNT(q));
        if (held_index(w, HO_BRAINSTORM, kd * 3 + (k - 2), form) != heldout) continue;
        const Kind *K = &kinds[kd];
        int idx[16];
        for (int i = 0; i < K->size; i++) idx[i] = i;
        pk_rng_shuffle_int(r, idx, K->size);
        char and_list[256] = "", comma_list[256] = "", numbered[256] = "", dashed[256] = "";
        for (int i = 0; i < k; i++) {
            const char *item = K->pool[idx[i]];
            char line[64];
            strcat(and_list, i == 0 ? "" : i == k - 1 ? " and " : ", ");
            strcat(and_list, item);
            strcat(comma_list, i ? ", " : "");
            strcat(comma_list, item);
            snprintf(line, sizeof line, "%s%d. %c%s", i ? "\n" : "", i + 1, ascii_upper(item[0]), item + 1);
            strcat(numbered, line);
            snprintf(line, sizeof line, "%s- %s", i ? "\n" : "", item);
            strcat(dashed, line);
        }
        Slot s[] = {{"k", number_words[k]}, {"kind", K->label}, {"and", and_list}, {"comma", comma_list},
                    {"numbered", numbered}, {"dashed", dashed}};
        static const char *const a[] = {"{^and}.", "Here are {k} {kind}: {and}.", "{numbered}", "{dashed}",
                                        "{^comma}."};
        FILL(d, instruction, q[form], s);
        FILL(d, response, PICK(r, a), s);
        set_key(d, "brainstorm:%d:%d:%d", kd, k, form);
        return 1;
    }
    return 0;
}

/* ---- creative_writing: greetings, describing a creature from the fact table, story openings */

static int gen_creative(const World *w, PkRng *r, int heldout, Draft *d) {
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int kind = (int)pk_rng_below(r, 3);
        if (kind == 0) {
            static const char *const occasions[] = {"birthday", "wedding", "graduation", "retirement", "new job"};
            static const char *const opener[][3] = {
                {"Happy birthday, {first}!", "Many happy returns, {first}!", "Happy birthday to you, {first}!"},
                {"Congratulations on your wedding, {first}!", "Best wishes on your wedding day, {first}!",
                 "Dear {first}, congratulations on your marriage!"},
                {"Congratulations on your graduation, {first}!", "Well done, {first}, you graduated!",
                 "Dear {first}, congratulations on finishing your studies!"},
                {"Happy retirement, {first}!", "Enjoy your retirement, {first}!",
                 "Dear {first}, congratulations on your retirement!"},
                {"Congratulations on your new job, {first}!", "Good luck in your new job, {first}!",
                 "Dear {first}, well done on the new job!"}};
            static const char *const wishes[] = {"I hope your day is full of joy.", "Wishing you a wonderful year ahead.",
                                                 "May all your wishes come true.", "Enjoy every moment.",
                                                 "I am so happy for you.", "You deserve it."};
            static const char *const closers[] = {"", " With love.", " Best wishes.", " Cheers!"};
            static const char *const q[] = {"Write a short {occasion} message for {first}.",
                                            "Write a {occasion} card for my friend {first}.",
                                            "Compose a one-line {occasion} greeting for {first}."};
            int oc = (int)pk_rng_below(r, COUNT(occasions)), fi = (int)pk_rng_below(r, N_FIRST),
                form = (int)pk_rng_below(r, COUNT(q));
            if (held_index(w, HO_GREETING, oc * N_FIRST + fi, form) != heldout) continue;
            Slot s[] = {{"occasion", occasions[oc]}, {"first", w->first[fi]}, {"open", opener[oc][pk_rng_below(r, 3)]},
                        {"wish", PICK(r, wishes)}, {"close", PICK(r, closers)}};
            char head[TEXT_CAP]; /* fill() writes up to TEXT_CAP bytes */
            Draft tmp = {0};
            fill(&tmp, head, s[2].val, s, COUNT(s));
            Slot s2[] = {{"head", head}, {"wish", s[3].val}, {"close", s[4].val}};
            FILL(d, instruction, q[form], s);
            FILL(d, response, "{head} {wish}{close}", s2);
            d->broken |= tmp.broken;
            set_key(d, "greeting:%d:%d:%d", oc, fi, form);
            return 1;
        }
        if (kind == 1) {
            static const char *const q[] = {"Write one sentence describing the {c}.", "Describe the {c} in a sentence.",
                                            "Write a short line about the {c}.", "Tell me about the {c} in one sentence."};
            int c = (int)pk_rng_below(r, N_CREATURES), form = (int)pk_rng_below(r, COUNT(q));
            if (held_index(w, HO_DESCRIBE, c, form) != heldout) continue;
            const Creature *cr = &w->creatures[c];
            Slot s[] = {{"c", cr->name}, {"colour", colours[cr->colour]}, {"habitat", habitats[cr->habitat]},
                        {"diet", diets[cr->diet]}};
            static const char *const a[] = {"The {c} is a {colour} creature that lives in the {habitat} and eats {diet}.",
                                            "Found in the {habitat}, the {colour} {c} feeds on {diet}.",
                                            "The {colour} {c} searches the {habitat} for {diet}.",
                                            "In the {habitat} lives the {c}, a {colour} animal that eats {diet}."};
            FILL(d, instruction, q[form], s);
            FILL(d, response, PICK(r, a), s);
            set_key(d, "describe:%d:%d", c, form);
            return 1;
        }
        static const char *const adjs[] = {"brave", "lonely", "clever", "tiny", "old", "curious", "sleepy", "proud"};
        static const char *const places[] = {"near a quiet lake", "at the edge of a forest", "in a busy town",
                                             "on a windy hill", "under an old bridge", "in a small garden"};
        static const char *const events[] = {"dreamed of seeing the sea", "never told anyone its secret",
                                             "found a golden key one morning", "made friends with a lost bird",
                                             "wanted to climb the highest tree", "waited every night for the moon"};
        static const char *const q[] = {"Write the first sentence of a story about {a} {adj} {animal}.",
                                        "Begin a short story about {a} {adj} {animal}.",
                                        "Write an opening line for a tale about {a} {adj} {animal}."};
        int ad = (int)pk_rng_below(r, COUNT(adjs)), an = (int)pk_rng_below(r, COUNT(animals)),
            form = (int)pk_rng_below(r, COUNT(q));
        if (held_hash(w, 0x5702000000ULL + (uint64_t)((ad * 16 + an) * 4 + form)) != heldout) continue;
        Slot s[] = {{"a", article(adjs[ad])}, {"adj", adjs[ad]}, {"animal", animals[an]}, {"place", PICK(r, places)},
                    {"event", PICK(r, events)}};
        static const char *const a[] = {"Once upon a time, {a} {adj} {animal} lived {place} and {event}.",
                                        "There was once {a} {adj} {animal} who lived {place} and {event}.",
                                        "Long ago, {place}, {a} {adj} {animal} {event}."};
        FILL(d, instruction, q[form], s);
        FILL(d, response, PICK(r, a), s);
        set_key(d, "story:%d:%d:%d", ad, an, form);
        return 1;
    }
    return 0;
}

/* ---- general_qa: what comes before/after, which number is larger, weeks to days */

static int gen_general_qa(const World *w, PkRng *r, int heldout, Draft *d) {
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int kind = (int)pk_rng_below(r, 4);
        if (kind == 0) { /* sequences: days, months, letters */
            int seq = (int)pk_rng_below(r, 3), after = (int)pk_rng_below(r, 2);
            int len = seq == 0 ? 7 : seq == 1 ? 12 : 26;
            int i = (int)pk_rng_below(r, (uint64_t)len);
            if (seq == 2 && ((after && i == 25) || (!after && i == 0))) continue; /* letters do not wrap */
            int j = seq == 2 ? i + (after ? 1 : -1) : (i + (after ? 1 : len - 1)) % len;
            char x[16], y[16];
            const char *thing = seq == 0 ? "day" : seq == 1 ? "month" : "letter";
            if (seq == 0) {
                snprintf(x, sizeof x, "%s", weekdays[i]);
                snprintf(y, sizeof y, "%s", weekdays[j]);
            } else if (seq == 1) {
                snprintf(x, sizeof x, "%s", months[i]);
                snprintf(y, sizeof y, "%s", months[j]);
            } else {
                snprintf(x, sizeof x, "%c", 'A' + i);
                snprintf(y, sizeof y, "%c", 'A' + j);
            }
            static const char *const q[] = {"What {thing} comes {dir} {x}?", "Which {thing} is {dir} {x}?",
                                            "Tell me the {thing} that comes {dir} {x}."};
            int form = (int)pk_rng_below(r, COUNT(q));
            if (held_index(w, HO_SEQUENCE, (seq * 32 + i) * 2 + after, form) != heldout) continue;
            Slot s[] = {{"thing", thing}, {"dir", after ? "after" : "before"}, {"x", x}, {"y", y}};
            static const char *const a[] = {"{y} comes {dir} {x}.", "It is {y}.", "{y}.", "The {thing} {dir} {x} is {y}."};
            FILL(d, instruction, q[form], s);
            FILL(d, response, PICK(r, a), s);
            set_key(d, "sequence:%d:%d:%d", seq * 32 + i, after, form);
            return 1;
        }
        if (kind == 1 || kind == 2) { /* comparison: the unordered pair is the operand */
            int a1 = between(r, 1, 999), b1 = between(r, 1, 999);
            if (a1 == b1) continue;
            int lo = a1 < b1 ? a1 : b1, hi = a1 < b1 ? b1 : a1;
            if (held_hash(w, 0xc0a9000000ULL + (uint64_t)lo * 1000 + (uint64_t)hi) != heldout) continue;
            char as[16], bs[16], ans[16];
            itoa_(a1, as);
            itoa_(b1, bs);
            int larger = kind == 1;
            itoa_(larger ? hi : lo, ans);
            Slot s[] = {{"a", as}, {"b", bs}, {"ans", ans}, {"which", larger ? "larger" : "smaller"}};
            static const char *const q[] = {"Which is {which}, {a} or {b}?", "Which number is {which}: {a} or {b}?",
                                            "Of {a} and {b}, which one is {which}?"};
            static const char *const a[] = {"{ans} is {which}.", "The {which} number is {ans}.", "{ans}.",
                                            "{ans} is the {which} one."};
            FILL(d, instruction, PICK(r, q), s);
            FILL(d, response, PICK(r, a), s);
            set_key(d, "compare:%d:%d", lo, hi);
            return 1;
        }
        /* weeks to days */
        static const char *const q[] = {"How many days are there in {n} weeks?", "How many days make {n} weeks?",
                                        "Convert {n} weeks into days."};
        int n = between(r, 2, 20), form = (int)pk_rng_below(r, COUNT(q));
        if (held_index(w, HO_WEEKS, n, form) != heldout) continue;
        char ns[16], days[16];
        itoa_(n, ns);
        itoa_(n * 7, days);
        Slot s[] = {{"n", ns}, {"days", days}};
        static const char *const a[] = {"There are {days} days in {n} weeks.", "{n} weeks are {days} days.",
                                        "{days} days.", "{days}."};
        FILL(d, instruction, q[form], s);
        FILL(d, response, PICK(r, a), s);
        set_key(d, "weeks:%d:%d", n, form);
        return 1;
    }
    return 0;
}

/* ---- arithmetic: the unordered pair of operands is held out, whatever the operation */

static int gen_arithmetic(const World *w, PkRng *r, int heldout, Draft *d) {
    static const char *const things[] = {"apples", "marbles", "stickers", "coins", "books", "pencils"};
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int op = (int)pk_rng_below(r, 5), a, b, c;
        if (op == 0 || op == 3) { /* add; word problem add */
            a = between(r, 1, 99);
            b = between(r, 1, 99);
            c = a + b;
        } else if (op == 1 || op == 4) { /* subtract; word problem take away */
            a = between(r, 2, 99);
            b = between(r, 1, a - 1);
            c = a - b;
        } else { /* multiply */
            a = between(r, 2, 12);
            b = between(r, 2, 12);
            c = a * b;
        }
        int lo = a < b ? a : b, hi = a < b ? b : a;
        if (held_hash(w, 0xa817000000ULL + (uint64_t)lo * 1000 + (uint64_t)hi) != heldout) continue;
        char as[16], bs[16], cs[16];
        const char *first = w->first[pk_rng_below(r, N_FIRST)];
        itoa_(a, as);
        itoa_(b, bs);
        itoa_(c, cs);
        Slot s[] = {{"a", as}, {"b", bs}, {"c", cs}, {"first", first}, {"things", PICK(r, things)}};
        static const QaForms forms[5] = {
            {{"What is {a} plus {b}?", "Calculate {a} + {b}.", "Add {a} and {b}.", "What is the sum of {a} and {b}?"},
             {"{a} + {b} = {c}.", "The answer is {c}.", "{c}", "The sum is {c}."}},
            {{"What is {a} minus {b}?", "Calculate {a} - {b}.", "Subtract {b} from {a}.",
              "What is the difference between {a} and {b}?"},
             {"{a} - {b} = {c}.", "The answer is {c}.", "{c}", "The difference is {c}."}},
            {{"What is {a} times {b}?", "Calculate {a} x {b}.", "Multiply {a} by {b}.", "What is the product of {a} and {b}?"},
             {"{a} x {b} = {c}.", "The answer is {c}.", "{c}", "The product is {c}."}},
            {{"{first} has {a} {things} and gets {b} more. How many {things} does {first} have now?",
              "{first} had {a} {things}. A friend gave {first} {b} more. How many {things} are there now?"},
             {"{first} has {c} {things} now.", "{c} {things}.", "{c}", "Now there are {c} {things}."}},
            {{"{first} had {a} {things} and gave away {b}. How many are left?",
              "{first} had {a} {things} but lost {b} of them. How many {things} does {first} have left?"},
             {"{first} has {c} {things} left.", "{c} {things} are left.", "{c}", "There are {c} {things} left."}},
        };
        const QaForms *f = &forms[op];
        FILL(d, instruction, f->q[pk_rng_below(r, op >= 3 ? 2 : 4)], s);
        FILL(d, response, PICK(r, f->a), s);
        set_key(d, "arith:%d:%d", lo, hi);
        return 1;
    }
    return 0;
}

/* ---- string_manipulation: the word is held out, whatever the operation */

static int gen_string(const World *w, PkRng *r, int heldout, Draft *d) {
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int wi = (int)pk_rng_below(r, (uint64_t)w->n_words);
        const char *word = w->words[wi];
        if (held_hash(w, fnv1a(0x57a1000000ULL, word)) != heldout) continue;
        size_t n = strlen(word);
        if (n >= 16) continue; /* the world's words have 3 to 7 letters */
        char upper[16], reversed[16], dashed[32], spaced[48], count[16], firstl[2], lastl[2];
        for (size_t i = 0; i < n; i++) {
            upper[i] = ascii_upper(word[i]);
            reversed[i] = word[n - 1 - i];
        }
        upper[n] = reversed[n] = 0;
        dashed[0] = spaced[0] = 0;
        for (size_t i = 0; i < n; i++) {
            char one[8];
            snprintf(one, sizeof one, "%s%c", i ? "-" : "", word[i]);
            strcat(dashed, one);
            snprintf(one, sizeof one, "%s%c", i ? ", " : "", upper[i]);
            strcat(spaced, one);
        }
        itoa_((int)n, count);
        firstl[0] = word[0];
        lastl[0] = word[n - 1];
        firstl[1] = lastl[1] = 0;
        Slot s[] = {{"w", word},       {"upper", upper}, {"rev", reversed}, {"dashed", dashed}, {"spaced", spaced},
                    {"count", count}, {"first", firstl}, {"last", lastl}};
        static const QaForms ops[6] = {
            {{"Reverse the letters of the word '{w}'.", "Write '{w}' backwards.", "Spell the word {w} in reverse order."},
             {"{rev}", "The reversed word is {rev}.", "Backwards, {w} is {rev}.", "'{w}' reversed is '{rev}'."}},
            {{"Write the word '{w}' in capital letters.", "Convert {w} to uppercase.", "Make the word '{w}' all caps."},
             {"{upper}", "In capital letters: {upper}.", "The uppercase form is {upper}.", "The word {w} in capitals is {upper}."}},
            {{"How many letters does the word '{w}' have?", "Count the letters in {w}.",
              "What is the number of letters in '{w}'?"},
             {"{count}", "The word {w} has {count} letters.", "It has {count} letters.", "{count} letters."}},
            {{"Spell the word '{w}' letter by letter.", "Spell out {w}.", "How do you spell '{w}'?"},
             {"{dashed}", "{spaced}", "It is spelled {dashed}.", "The word {w} is spelled {spaced}."}},
            {{"What is the first letter of the word '{w}'?", "Which letter does {w} start with?",
              "Give the first letter of '{w}'."},
             {"{first}", "The first letter is {first}.", "The word {w} starts with the letter {first}.", "It starts with {first}."}},
            {{"What is the last letter of the word '{w}'?", "Which letter does {w} end with?",
              "Give the last letter of '{w}'."},
             {"{last}", "The last letter is {last}.", "The word {w} ends with the letter {last}.", "It ends with {last}."}},
        };
        int op = (int)pk_rng_below(r, COUNT(ops));
        FILL(d, instruction, ops[op].q[pk_rng_below(r, 3)], s);
        FILL(d, response, PICK(r, ops[op].a), s);
        set_key(d, "word:%d", wi);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- categories and splits */

typedef struct {
    const char *name;
    int weight; /* percent of every split */
    TaskFn fn;
} Category;

static const Category categories[] = {
    {"open_qa", 16, gen_open_qa},
    {"closed_qa", 10, gen_closed_qa},
    {"classification", 10, gen_classification},
    {"information_extraction", 9, gen_extraction},
    {"summarization", 8, gen_summarization},
    {"rewriting", 8, gen_rewriting},
    {"brainstorming", 8, gen_brainstorming},
    {"creative_writing", 8, gen_creative},
    {"general_qa", 8, gen_general_qa},
    {"arithmetic", 8, gen_arithmetic},
    {"string_manipulation", 7, gen_string},
};

int synth_n_categories(void) { return COUNT(categories); }

const char *synth_category_name(int i) { return i >= 0 && i < COUNT(categories) ? categories[i].name : NULL; }

/* An open-addressing set of non-zero 64-bit hashes. */
typedef struct {
    uint64_t *slots;
    size_t mask;
} HashSet;

static int hashset_init(HashSet *h, size_t n, char *err) {
    size_t cap = 64;
    while (cap < 2 * n + 2) cap *= 2;
    h->slots = pk_calloc(cap, sizeof *h->slots, err);
    h->mask = cap - 1;
    return h->slots ? PK_OK : PK_FAIL;
}

static void hashset_add(HashSet *h, uint64_t x) {
    for (size_t i = x & h->mask;; i = (i + 1) & h->mask) {
        if (h->slots[i] == x) return;
        if (!h->slots[i]) {
            h->slots[i] = x;
            return;
        }
    }
}

static int hashset_has(const HashSet *h, uint64_t x) {
    for (size_t i = x & h->mask;; i = (i + 1) & h->mask) {
        if (h->slots[i] == x) return 1;
        if (!h->slots[i]) return 0;
    }
}

static uint64_t key_hash(const char *key) {
    uint64_t h = fnv1a(FNV_INIT ^ 0x6b6579ULL, key);
    return h ? h : 1;
}

static void records_free(SynthRecord *recs, int n) {
    if (!recs) return;
    for (int i = 0; i < n; i++) {
        free(recs[i].instruction);
        free(recs[i].context);
        free(recs[i].response);
        free(recs[i].key);
    }
    free(recs);
}

/* Category of every record of a split of size n: counts by weight (largest remainder), shuffled. */
static int *category_schedule(PkRng *r, int n, char *err) {
    int *cats = pk_malloc((size_t)(n > 0 ? n : 1) * sizeof *cats, err);
    if (!cats) return NULL;
    int nc = COUNT(categories), counts[COUNT(categories)], given = 0;
    long rem[COUNT(categories)];
    for (int c = 0; c < nc; c++) {
        counts[c] = (int)((long)n * categories[c].weight / 100);
        rem[c] = (long)n * categories[c].weight % 100;
        given += counts[c];
    }
    while (given < n) { /* the largest remainder first, ties to the earlier category */
        int best = 0;
        for (int c = 1; c < nc; c++)
            if (rem[c] > rem[best]) best = c;
        counts[best]++;
        rem[best] = -1;
        given++;
    }
    int k = 0;
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < counts[c]; i++) cats[k++] = c;
    pk_rng_shuffle_int(r, cats, n);
    return cats;
}

static char *dup_text(const char *s, char *err) {
    size_t n = strlen(s);
    char *p = pk_malloc(n + 1, err);
    if (p) memcpy(p, s, n + 1);
    return p;
}

/* Draws n records. heldout 0 = training side; heldout 1 = valid/test side, where a draw whose
 * (instruction, context) pair or key occurs in train (train_pairs, train_keys) is drawn again. */
static int generate_split(const World *w, uint64_t stream_seed, int n, int heldout, const HashSet *train_pairs,
                          const HashSet *train_keys, const char *split_name, SynthRecord **out, char *err) {
    *out = NULL;
    PkRng r;
    pk_rng_seed(&r, stream_seed);
    SynthRecord *recs = pk_calloc((size_t)(n > 0 ? n : 1), sizeof *recs, err);
    if (!recs) return PK_FAIL;
    int *cats = category_schedule(&r, n, err);
    if (!cats) {
        free(recs);
        return PK_FAIL;
    }
    Draft *d = pk_malloc(sizeof *d, err);
    if (!d) {
        free(cats);
        free(recs);
        return PK_FAIL;
    }
    for (int i = 0; i < n; i++) {
        const Category *cat = &categories[cats[i]];
        int ok = 0;
        for (int attempt = 0; attempt < 1000 && !ok; attempt++) {
            memset(d, 0, sizeof *d);
            if (!cat->fn(w, &r, heldout, d)) break;
            if (d->broken) {
                pk_errf(err, "synth: a %s template of category %s overflowed or named an unknown slot", split_name,
                        cat->name);
                goto fail;
            }
            ok = !heldout || (!hashset_has(train_pairs, pair_hash(d->instruction, d->context)) &&
                              !hashset_has(train_keys, key_hash(d->key)));
        }
        if (!ok) {
            pk_errf(err, "synth: could not draw a %s record of category %s that is not in train", split_name, cat->name);
            goto fail;
        }
        SynthRecord *rec = &recs[i];
        rec->category = cat->name;
        if (!(rec->instruction = dup_text(d->instruction, err)) || !(rec->context = dup_text(d->context, err)) ||
            !(rec->response = dup_text(d->response, err)) || !(rec->key = dup_text(d->key, err)))
            goto fail;
    }
    free(d);
    free(cats);
    *out = recs;
    return PK_OK;
fail:
    free(d);
    free(cats);
    records_free(recs, n);
    return PK_FAIL;
}

void synth_options_default(SynthOptions *opt, uint64_t seed, int n_train) {
    opt->seed = seed;
    opt->n_train = n_train;
    opt->n_valid = opt->n_test = n_train > 0 ? (n_train + 11) / 12 : 0;
}

int synth_generate(const SynthOptions *opt, SynthSplits *out, char *err) {
    memset(out, 0, sizeof *out);
    if (opt->n_train < 1 || opt->n_train > SYNTH_MAX_RECORDS)
        return pk_errf(err, "synth: the number of training records must be between 1 and %d, got %d",
                       SYNTH_MAX_RECORDS, opt->n_train);
    if (opt->n_valid < 0 || opt->n_valid > SYNTH_MAX_RECORDS)
        return pk_errf(err, "synth: the number of valid records must be between 0 and %d, got %d", SYNTH_MAX_RECORDS,
                       opt->n_valid);
    if (opt->n_test < 0 || opt->n_test > SYNTH_MAX_RECORDS)
        return pk_errf(err, "synth: the number of test records must be between 0 and %d, got %d", SYNTH_MAX_RECORDS,
                       opt->n_test);
    World *w = pk_malloc(sizeof *w, err);
    if (!w) return PK_FAIL;
    world_build(w, opt->seed);
    HashSet pairs = {0}, keys = {0};
    int rc = PK_FAIL;
    /* Each split has its own stream, so the sizes of the others do not change its draws. */
    if (generate_split(w, pk_mix64(opt->seed ^ 0x7a41000000000002ULL), opt->n_train, 0, NULL, NULL, "train", &out->train,
                       err))
        goto done;
    out->n_train = opt->n_train;
    if (hashset_init(&pairs, (size_t)opt->n_train, err) || hashset_init(&keys, (size_t)opt->n_train, err)) goto done;
    for (int i = 0; i < opt->n_train; i++) {
        hashset_add(&pairs, pair_hash(out->train[i].instruction, out->train[i].context));
        hashset_add(&keys, key_hash(out->train[i].key));
    }
    if (generate_split(w, pk_mix64(opt->seed ^ 0x7a41000000000003ULL), opt->n_valid, 1, &pairs, &keys, "valid",
                       &out->valid, err))
        goto done;
    out->n_valid = opt->n_valid;
    if (generate_split(w, pk_mix64(opt->seed ^ 0x7a41000000000004ULL), opt->n_test, 1, &pairs, &keys, "test", &out->test,
                       err))
        goto done;
    out->n_test = opt->n_test;
    rc = PK_OK;
done:
    free(pairs.slots);
    free(keys.slots);
    free(w);
    if (rc != PK_OK) synth_free(out);
    return rc;
}

void synth_free(SynthSplits *s) {
    records_free(s->train, s->n_train);
    records_free(s->valid, s->n_valid);
    records_free(s->test, s->n_test);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- output */

int synth_to_jsonl(const SynthRecord *records, int n, PkBuf *out, char *err) {
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "instruction", records[i].instruction) ||
            !cJSON_AddStringToObject(o, "context", records[i].context) ||
            !cJSON_AddStringToObject(o, "response", records[i].response) ||
            !cJSON_AddStringToObject(o, "category", records[i].category)) {
            cJSON_Delete(o);
            return pk_errf(err, "synth: out of memory building JSON for record %d", i + 1);
        }
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!line) return pk_errf(err, "synth: out of memory printing JSON for record %d", i + 1);
        int bad = pk_buf_append(out, line, strlen(line)) || pk_buf_append(out, "\n", 1);
        cJSON_free(line);
        if (bad) return pk_errf(err, "synth: out of memory collecting the JSONL text");
    }
    return PK_OK;
}

int synth_template_jsonl(int copies, PkBuf *out, char *err) {
    /* Sentinel bytes mark where the instruction and the input go; the pieces are what is between. */
    char *plain = data_format_prompt("\x01", NULL), *with_input = data_format_prompt("\x01", "\x02");
    int rc = PK_FAIL;
    if (!plain || !with_input) {
        pk_errf(err, "synth: out of memory formatting the prompt template");
        goto done;
    }
    const char *texts[2] = {plain, with_input};
    for (int c = 0; c < copies; c++)
        for (int t = 0; t < 2; t++)
            for (const char *p = texts[t]; *p;) {
                size_t n = strcspn(p, "\x01\x02");
                if (n > 0) {
                    char piece[512];
                    if (n >= sizeof piece) {
                        pk_errf(err, "synth: a piece of the prompt template is longer than %zu bytes", sizeof piece);
                        goto done;
                    }
                    memcpy(piece, p, n);
                    piece[n] = 0;
                    cJSON *o = cJSON_CreateObject();
                    char *line = o && cJSON_AddStringToObject(o, "text", piece) ? cJSON_PrintUnformatted(o) : NULL;
                    cJSON_Delete(o);
                    int bad = !line || pk_buf_append(out, line, strlen(line)) || pk_buf_append(out, "\n", 1);
                    cJSON_free(line);
                    if (bad) {
                        pk_errf(err, "synth: out of memory building the template text");
                        goto done;
                    }
                }
                p += n;
                if (*p) p++;
            }
    rc = PK_OK;
done:
    free(plain);
    free(with_input);
    return rc;
}

int synth_write_dir(const SynthSplits *s, int template_copies, const char *dir, char *err) {
    static const char *const names[4] = {"train.jsonl", "valid.jsonl", "test.jsonl", "template.jsonl"};
    const SynthRecord *recs[3] = {s->train, s->valid, s->test};
    const int counts[3] = {s->n_train, s->n_valid, s->n_test};
    int n_files = template_copies > 0 ? 4 : 3;
    PkBuf text[4] = {{0}};
    char paths[4][4096];
    int created[4] = {0}, rc = PK_FAIL;
    for (int k = 0; k < n_files; k++) {
        if (pk_path_join(paths[k], sizeof paths[k], dir, names[k], err)) goto done;
        if (k < 3 ? synth_to_jsonl(recs[k], counts[k], &text[k], err) : synth_template_jsonl(template_copies, &text[k], err))
            goto done;
    }
    if (pk_mkdirs(dir, err)) goto done;
    for (int k = 0; k < n_files; k++) {
        int existed = pk_file_exists(paths[k]);
        if (pk_write_file_atomic(paths[k], text[k].data ? text[k].data : "", text[k].len, err)) {
            for (int j = 0; j < k; j++)
                if (created[j]) unlink(paths[j]);
            goto done;
        }
        created[k] = !existed;
    }
    rc = PK_OK;
done:
    for (int k = 0; k < 4; k++) pk_buf_free(&text[k]);
    return rc;
}

/* ---------------------------------------------------------------- the pretraining corpus */

/* Document kinds, in percent of the documents drawn (the training records come on top). */
enum { DOC_ARTICLE, DOC_LIST, DOC_DIALOGUE, DOC_WORKED, DOC_RECORD, DOC_KINDS };
static const int doc_weights[DOC_KINDS] = {30, 10, 14, 8, 38};

/* Appends a filled template (fill() with the same slot rules) to a document. */
static int doc_put(PkBuf *doc, Draft *scratch, const char *tmpl, const Slot *slots, int n_slots) {
    scratch->broken = 0;
    fill(scratch, scratch->response, tmpl, slots, n_slots);
    if (scratch->broken) return -1;
    return pk_buf_append(doc, scratch->response, strlen(scratch->response));
}
#define DOC_PUT(doc, scratch, tmpl, slots) doc_put((doc), (scratch), (tmpl), (slots), COUNT(slots))

/* Puts sentences[0] first and the others (each kept with probability 4/5) in a random order. */
static int doc_sentences(PkBuf *doc, Draft *scratch, PkRng *r, const char *const *sentences, int n, const Slot *slots,
                         int n_slots) {
    int order[16], m = 0;
    for (int i = 1; i < n && m < 16; i++)
        if (pk_rng_below(r, 5) != 0) order[m++] = i;
    pk_rng_shuffle_int(r, order, m);
    if (doc_put(doc, scratch, sentences[0], slots, n_slots)) return -1;
    for (int i = 0; i < m; i++)
        if (pk_buf_append(doc, " ", 1) || doc_put(doc, scratch, sentences[order[i]], slots, n_slots)) return -1;
    return 0;
}

static int country_of_capital(const World *w, int town) {
    for (int k = 0; k < N_COUNTRIES; k++)
        if (w->countries[k].capital == town) return k;
    return -1;
}

/* An encyclopedia-style article about one town, creature, country or river. */
static int doc_article(const World *w, PkRng *r, Draft *scratch, PkBuf *doc) {
    char year[16], person[2 * NAME_CAP];
    const char *first;
    person_name(w, r, person, &first);
    int kind = (int)pk_rng_below(r, 4);
    if (kind == 0) {
        int ti = (int)pk_rng_below(r, N_TOWNS), k = country_of_capital(w, ti);
        const Town *t = &w->towns[ti];
        itoa_(t->year, year);
        Slot s[] = {{"town", t->name}, {"river", w->rivers[t->river]}, {"year", year},
                    {"export", exports_pool[t->export_]}, {"person", person},
                    {"country", k >= 0 ? w->countries[k].name : ""}, {"month", PICK(r, months)},
                    {"day", PICK(r, weekdays)}, {"job", PICK(r, jobs)}};
        static const char *const intro[] = {"{town} is a town on the {river} River.",
                                            "The town of {town} lies on the banks of the {river}.",
                                            "{town} stands beside the {river} River.", "{town} is an old river town."};
        static const char *const founded[] = {"It was founded in {year}.", "{town} was founded in {year}.",
                                              "The town dates from {year}.", "Its founding year is {year}."};
        static const char *const exports[] = {"Its main export is {export}.", "{town} mainly exports {export}.",
                                              "Traders from {town} sell mostly {export}.",
                                              "{town} is known for its {export}."};
        static const char *const river[] = {"The {river} River flows through the town.",
                                            "Boats on the {river} carry goods from {town}.",
                                            "The town grew up along the {river}."};
        static const char *const filler[] = {"Many people visit {town} in {month}.",
                                             "The market of {town} is busiest on {day}.",
                                             "{person}, a {job}, was born in {town}.",
                                             "Most houses in {town} are built of stone."};
        const char *sent[6] = {PICK(r, intro), PICK(r, founded), PICK(r, exports), PICK(r, river), PICK(r, filler),
                               k >= 0 ? "{town} is the capital of {country}." : "{town} has a small harbour."};
        return doc_sentences(doc, scratch, r, sent, 6, s, COUNT(s));
    }
    if (kind == 1) {
        const Creature *c = &w->creatures[pk_rng_below(r, N_CREATURES)];
        Slot s[] = {{"c", c->name}, {"colour", colours[c->colour]}, {"habitat", habitats[c->habitat]},
                    {"diet", diets[c->diet]}, {"person", person}, {"town", w->towns[pk_rng_below(r, N_TOWNS)].name},
                    {"month", PICK(r, months)}};
        static const char *const intro[] = {"The {c} is a {colour} creature.", "The {c} is a small {colour} animal.",
                                            "A {c} is easy to recognise by its {colour} colour."};
        static const char *const home[] = {"It lives in the {habitat}.", "The {c} makes its home in the {habitat}.",
                                           "You can find the {c} in the {habitat}."};
        static const char *const food[] = {"It feeds on {diet}.", "The {c} eats {diet}.",
                                           "A {c} lives mostly on {diet}."};
        static const char *const filler[] = {"{person} once saw a {c} near {town}.",
                                             "Young {c}s are born in {month}.", "The {c} is shy and rarely seen.",
                                             "Children like to draw the {c}."};
        const char *sent[5] = {PICK(r, intro), PICK(r, home), PICK(r, food), PICK(r, filler), PICK(r, filler)};
        return doc_sentences(doc, scratch, r, sent, 5, s, COUNT(s));
    }
    if (kind == 2) {
        const Country *k = &w->countries[pk_rng_below(r, N_COUNTRIES)];
        const Town *cap = &w->towns[k->capital];
        itoa_(cap->year, year);
        Slot s[] = {{"country", k->name}, {"capital", cap->name}, {"currency", currencies[k->currency]},
                    {"river", w->rivers[cap->river]}, {"year", year}, {"person", person}};
        static const char *const intro[] = {"{country} is a country whose capital is {capital}.",
                                            "The capital of {country} is {capital}.",
                                            "{capital} is the capital city of {country}."};
        static const char *const money[] = {"People in {country} pay with the {currency}.",
                                            "The currency of {country} is the {currency}.",
                                            "{country} uses the {currency}."};
        static const char *const more[] = {"{capital} lies on the {river} River.",
                                           "{capital} was founded in {year}.",
                                           "{person} is a well-known writer from {country}.",
                                           "The government of {country} meets in {capital}."};
        const char *sent[5] = {PICK(r, intro), PICK(r, money), PICK(r, more), PICK(r, more), PICK(r, more)};
        return doc_sentences(doc, scratch, r, sent, 5, s, COUNT(s));
    }
    int ri = (int)pk_rng_below(r, N_RIVERS), n = 0;
    Slot s[] = {{"river", w->rivers[ri]}, {"person", person}};
    if (DOC_PUT(doc, scratch, "The {river} is a river.", s)) return -1;
    for (int i = 0; i < N_TOWNS; i++)
        if (w->towns[i].river == ri) {
            Slot t[] = {{"town", w->towns[i].name}, {"river", w->rivers[ri]}};
            static const char *const forms[] = {" It flows through {town}.", " The town of {town} lies on it.",
                                                " {town} is built on the {river}."};
            if (DOC_PUT(doc, scratch, PICK(r, forms), t)) return -1;
            n++;
        }
    if (n == 0 && DOC_PUT(doc, scratch, " No town lies on the {river}.", s)) return -1;
    return DOC_PUT(doc, scratch, " {person} sailed down the {river} last summer.", s);
}

/* A list or table over one attribute of several entities. */
static int doc_list(const World *w, PkRng *r, Draft *scratch, PkBuf *doc) {
    int kind = (int)pk_rng_below(r, 4), idx[N_TOWNS];
    for (int i = 0; i < N_TOWNS; i++) idx[i] = i;
    char year[16];
    if (kind == 0) {
        static const char *const head[] = {"Towns and their rivers:\n", "Town | River\n", "Rivers of the towns:\n"};
        if (pk_buf_printf(doc, "%s", PICK(r, head))) return -1;
        pk_rng_shuffle_int(r, idx, N_TOWNS);
        int n = between(r, 4, 10);
        for (int i = 0; i < n; i++) {
            const Town *t = &w->towns[idx[i]];
            if (pk_buf_printf(doc, "- %s: the %s\n", t->name, w->rivers[t->river])) return -1;
        }
        return 0;
    }
    if (kind == 1) {
        static const char *const head[] = {"Founding years:\n", "When the towns were founded:\n"};
        if (pk_buf_printf(doc, "%s", PICK(r, head))) return -1;
        pk_rng_shuffle_int(r, idx, N_TOWNS);
        int n = between(r, 4, 10);
        for (int i = 0; i < n; i++) {
            const Town *t = &w->towns[idx[i]];
            itoa_(t->year, year);
            if (pk_buf_printf(doc, "- %s, founded in %s, exports %s\n", t->name, year, exports_pool[t->export_]))
                return -1;
        }
        return 0;
    }
    if (kind == 2) {
        if (pk_buf_printf(doc, "Countries, capitals and currencies:\n")) return -1;
        int ks[N_COUNTRIES];
        for (int i = 0; i < N_COUNTRIES; i++) ks[i] = i;
        pk_rng_shuffle_int(r, ks, N_COUNTRIES);
        int n = between(r, 3, 8);
        for (int i = 0; i < n; i++) {
            const Country *k = &w->countries[ks[i]];
            if (pk_buf_printf(doc, "- %s: capital %s, currency the %s\n", k->name, w->towns[k->capital].name,
                              currencies[k->currency]))
                return -1;
        }
        return 0;
    }
    int h = (int)pk_rng_below(r, COUNT(habitats)), n = 0;
    Slot s[] = {{"habitat", habitats[h]}};
    static const char *const head[] = {"Creatures of the {habitat}:", "What lives in the {habitat}:"};
    if (DOC_PUT(doc, scratch, PICK(r, head), s)) return -1;
    for (int i = 0; i < N_CREATURES; i++)
        if (w->creatures[i].habitat == h) {
            const Creature *c = &w->creatures[i];
            if (pk_buf_printf(doc, "\n- the %s (%s, eats %s)", c->name, colours[c->colour], diets[c->diet])) return -1;
            n++;
        }
    if (n == 0 && pk_buf_printf(doc, "\nnone are known.")) return -1;
    return 0;
}

/* Draws one training-side record of category cat that shares no (instruction, context) pair and
 * no key with valid or test. Returns 1, 0 when none was found, -1 on a broken template. */
static int draw_train_side(const World *w, PkRng *r, int cat, const HashSet *held_pairs, const HashSet *held_keys,
                           Draft *d) {
    for (int attempt = 0; attempt < 1000; attempt++) {
        memset(d, 0, sizeof *d);
        if (!categories[cat].fn(w, r, 0, d)) return 0;
        if (d->broken) return -1;
        if (!hashset_has(held_pairs, pair_hash(d->instruction, d->context)) && !hashset_has(held_keys, key_hash(d->key)))
            return 1;
    }
    return 0;
}

/* A conversation of a few questions without context (facts, arithmetic, strings, general). */
static int doc_dialogue(const World *w, PkRng *r, Draft *d, const HashSet *held_pairs, const HashSet *held_keys,
                        PkBuf *doc) {
    static const int cats[] = {0, 0, 0, 8, 9, 10}; /* open_qa (thrice as often), general_qa, arithmetic, string */
    int ai = (int)pk_rng_below(r, N_FIRST), bi = (ai + 1 + (int)pk_rng_below(r, N_FIRST - 1)) % N_FIRST;
    const char *a = w->first[ai], *b = w->first[bi];
    int n = between(r, 2, 4);
    for (int i = 0; i < n; i++) {
        int got = draw_train_side(w, r, PICK(r, cats), held_pairs, held_keys, d);
        if (got < 0) return -1;
        if (!got) continue;
        if (pk_buf_printf(doc, "%s%s: %s\n%s: %s", i ? "\n" : "", a, d->instruction, b, d->response)) return -1;
    }
    return 0;
}

/* Worked arithmetic on operand pairs that valid and test never use. */
static int doc_worked(const World *w, PkRng *r, PkBuf *doc) {
    int n = between(r, 2, 5);
    for (int i = 0; i < n; i++) {
        int op = (int)pk_rng_below(r, 3), a, b, c;
        for (;;) {
            if (op == 0) a = between(r, 1, 99), b = between(r, 1, 99), c = a + b;
            else if (op == 1) a = between(r, 2, 99), b = between(r, 1, a - 1), c = a - b;
            else a = between(r, 2, 12), b = between(r, 2, 12), c = a * b;
            int lo = a < b ? a : b, hi = a < b ? b : a;
            if (!held_hash(w, 0xa817000000ULL + (uint64_t)lo * 1000 + (uint64_t)hi)) break;
        }
        static const char *const sym[] = {"+", "-", "x"}, *const verb[] = {"add", "subtract", "multiply"};
        int rc = pk_rng_below(r, 2)
                     ? pk_buf_printf(doc, "%sProblem: %d %s %d\nWe %s: %d %s %d = %d.\nAnswer: %d", i ? "\n\n" : "", a,
                                     sym[op], b, verb[op], a, sym[op], b, c, c)
                     : pk_buf_printf(doc, "%s%d %s %d = %d", i ? "\n" : "", a, sym[op], b, c);
        if (rc) return -1;
    }
    return 0;
}

/* One instruction record as plain text: the Alpaca template most often, else looser forms. */
static int doc_record(const char *instruction, const char *context, const char *response, PkRng *r, PkBuf *doc) {
    int form = (int)pk_rng_below(r, 4);
    if (form <= 1) {
        char *prompt = data_format_prompt(instruction, context);
        if (!prompt) return -1;
        int rc = pk_buf_printf(doc, "%s%s", prompt, response);
        free(prompt);
        return rc;
    }
    if (form == 2)
        return context[0] ? pk_buf_printf(doc, "%s\n\n%s\n\nAnswer: %s", context, instruction, response)
                          : pk_buf_printf(doc, "Question: %s\nAnswer: %s", instruction, response);
    return context[0] ? pk_buf_printf(doc, "Instruction: %s\nInput: %s\nOutput: %s", instruction, context, response)
                      : pk_buf_printf(doc, "Instruction: %s\nOutput: %s", instruction, response);
}

static int append_text_line(PkBuf *out, const char *text, char *err) {
    cJSON *o = cJSON_CreateObject();
    char *line = o && cJSON_AddStringToObject(o, "text", text) ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    int bad = !line || pk_buf_append(out, line, strlen(line)) || pk_buf_append(out, "\n", 1);
    cJSON_free(line);
    return bad ? pk_errf(err, "synth: out of memory building the pretraining corpus") : PK_OK;
}

int synth_pretrain_jsonl(const SynthSplits *s, uint64_t seed, int n_docs, PkBuf *out, char *err) {
    if (n_docs < 0 || n_docs > SYNTH_MAX_RECORDS * 10)
        return pk_errf(err, "synth: the number of pretraining documents must be between 0 and %d, got %d",
                       SYNTH_MAX_RECORDS * 10, n_docs);
    World *w = pk_malloc(sizeof *w, err);
    Draft *d = pk_malloc(sizeof *d, err);
    HashSet pairs = {0}, keys = {0};
    int *kinds = NULL, rc = PK_FAIL, n_all = s->n_train + n_docs;
    PkBuf doc = {0};
    if (!w || !d) goto done;
    world_build(w, seed);
    size_t n_held = (size_t)(s->n_valid + s->n_test);
    if (hashset_init(&pairs, n_held, err) || hashset_init(&keys, n_held, err)) goto done;
    for (int split = 0; split < 2; split++) {
        const SynthRecord *recs = split ? s->test : s->valid;
        int n = split ? s->n_test : s->n_valid;
        for (int i = 0; i < n; i++) {
            hashset_add(&pairs, pair_hash(recs[i].instruction, recs[i].context));
            hashset_add(&keys, key_hash(recs[i].key));
        }
    }
    /* The document order: every training record once (-1 - index) and n_docs drawn documents,
     * shuffled together, so no stretch of the corpus is of one kind. */
    if (!(kinds = pk_malloc((size_t)(n_all > 0 ? n_all : 1) * sizeof *kinds, err))) goto done;
    PkRng r;
    pk_rng_seed(&r, pk_mix64(seed ^ 0x7a41000000000005ULL));
    for (int i = 0; i < s->n_train; i++) kinds[i] = -1 - i;
    for (int i = 0; i < n_docs; i++) {
        int x = (int)pk_rng_below(&r, 100), k = 0;
        while (x >= doc_weights[k]) x -= doc_weights[k++];
        kinds[s->n_train + i] = k;
    }
    pk_rng_shuffle_int(&r, kinds, n_all);
    for (int i = 0; i < n_all; i++) {
        doc.len = 0;
        int bad = 0, k = kinds[i];
        if (k < 0) {
            const SynthRecord *rec = &s->train[-1 - k];
            bad = doc_record(rec->instruction, rec->context, rec->response, &r, &doc);
        } else if (k == DOC_ARTICLE) {
            bad = doc_article(w, &r, d, &doc);
        } else if (k == DOC_LIST) {
            bad = doc_list(w, &r, d, &doc);
        } else if (k == DOC_DIALOGUE) {
            bad = doc_dialogue(w, &r, d, &pairs, &keys, &doc);
        } else if (k == DOC_WORKED) {
            bad = doc_worked(w, &r, &doc);
        } else {
            /* a category drawn with the benchmark's own shares */
            int x = (int)pk_rng_below(&r, 100), c = 0;
            while (c < COUNT(categories) - 1 && x >= categories[c].weight) x -= categories[c++].weight;
            int got = draw_train_side(w, &r, c, &pairs, &keys, d);
            bad = got < 0 || (got > 0 && doc_record(d->instruction, d->context, d->response, &r, &doc));
        }
        if (bad) {
            pk_errf(err, "synth: pretraining document %d could not be built (a template overflowed or out of memory)",
                    i + 1);
            goto done;
        }
        if (doc.len == 0) continue;
        if (pk_buf_append(&doc, "", 1)) {
            pk_errf(err, "synth: out of memory building the pretraining corpus");
            goto done;
        }
        if (append_text_line(out, doc.data, err)) goto done;
    }
    rc = PK_OK;
done:
    pk_buf_free(&doc);
    free(kinds);
    free(pairs.slots);
    free(keys.slots);
    free(d);
    free(w);
    return rc;
}
