"""The contextual-retrieval set: facts that only their document's context ties to a subject.

Every document describes one invented place. Its opening paragraph names the place once; every
later paragraph refers to it only as "it", "its" or "the town". Each document states the same
kinds of fact (what it exports, which festival it holds, who founded it, ...) with values no
other document shares, so every fact paragraph has look-alike distractors in every other
document. A query names the place and asks for one fact ("What does Ardenvale export?"); its one
relevant chunk is the fact paragraph, which never names the place.

The set is not tilted towards any method: each fact paragraph states its kind of fact in plain
words the query also uses (export, festival, founded), the answer is in the text, and the
subject is named in the same document. :func:`named_chunk_texts` gives the chunks with their
subject written in, a reference upper bound showing that the facts are findable.

Example:
    >>> from dewey_core.evaluation import contextual_set
    >>> data = contextual_set(num_documents=3, target_tokens=150, seed=0)
    >>> query = data.queries[0]
    >>> doc = data.documents[query.doc]
    >>> doc.subject in query.text, doc.subject in doc.chunk_texts[query.chunk]
    (True, False)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class ContextualDocument:
    doc_id: str
    subject: str
    kind: str
    """What the subject is ("town", "island", ...); the anaphor is "the <kind>"."""
    text: str
    spans: list[tuple[int, int]]
    """Character spans of the chunks (one per paragraph); chunk 0 names the subject."""

    @property
    def chunk_texts(self) -> list[str]:
        return [self.text[s:e] for s, e in self.spans]


@dataclass(frozen=True)
class ContextualQuery:
    text: str
    doc: int
    """Index of the document that answers it."""
    chunk: int
    """Index, within that document, of the one relevant chunk."""
    fact: str


@dataclass(frozen=True)
class ContextualSet:
    documents: list[ContextualDocument]
    queries: list[ContextualQuery]
    target_tokens: int


_KINDS = ("town", "village", "island", "valley", "city", "harbour town")
_REGIONS = ("in the northern hills", "on the eastern coast", "at the edge of a wide plain",
            "between two mountain ranges", "on a bend of the southern lakes",
            "in a dry upland province", "near the western border", "among the marshes of the delta")

# fact -> (question, value pool, anaphoric paragraph templates). Templates never name the subject.
_FACTS: dict[str, tuple[str, list[str], list[str]]] = {
    "export": (
        "What does {name} export?",
        ["saffron", "copper", "wool", "salt", "amber", "timber", "olive oil", "glass beads",
         "indigo dye", "honey", "tin", "silk", "cider", "slate", "linen", "porcelain", "walnuts",
         "leather", "marble", "pepper", "tea", "paper", "iron nails", "dried figs", "barley",
         "pearls", "cork", "lace", "rope", "candles", "soap", "wine"],
        ["Its economy depends on the export of {value}, which merchants carry to markets far away.",
         "The {kind}'s main export is {value}; most families earn their living from it.",
         "For two centuries the {kind} has exported {value} to ports across the sea."],
    ),
    "festival": (
        "Which festival is celebrated in {name}?",
        ["the Lantern Night", "the Festival of Kites", "the Feast of Bells", "the Harvest Masks",
         "the Night of Mirrors", "the Boat Parade", "the Blue Ribbon Fair", "the Candle Vigil",
         "the Feast of Ravens", "the Drum Week", "the Festival of Ash", "the Lily Procession",
         "the Winter Bonfires", "the Rain Dance", "the Fox Games", "the Bread Festival",
         "the Salt Carnival", "the Moon Regatta", "the Feast of Doors", "the Kettle Fair",
         "the Straw Giants", "the Silver Race", "the Fig Feast", "the Horn Festival",
         "the Pebble Day", "the Glass Parade", "the Owl Night", "the Feast of Sails",
         "the Copper Dance", "the Festival of Wells", "the Ember Games", "the Thistle Fair"],
        ["Every spring its streets fill for {value}, the festival that people here wait for all year.",
         "The best-known festival celebrated in the {kind} is {value}, held each autumn.",
         "Visitors arrive each summer for {value}, a festival that lasts three days."],
    ),
    "founder": (
        "Who founded {name}?",
        ["Marta Velloso", "Ivo Brandt", "Sabine Oduya", "Tomas Kerrigan", "Aiko Lindqvist",
         "Bruno Castellan", "Nadia Ferreira", "Oskar Halvorsen", "Leila Marchetti", "Pavel Drozd",
         "Greta Olufsen", "Hugo Sandoval", "Irena Kovac", "Felix Ambrose", "Rosa Takeda",
         "Anton Weller", "Clara Nyberg", "Emil Okafor", "Jana Petrov", "Milo Escobar",
         "Vera Lindholm", "Karl Osei", "Lucia Brennan", "Stefan Ilic", "Dora Whitcombe",
         "Rafael Mertens", "Helga Sorensen", "Yusuf Calder", "Ines Vallon", "Otto Pereira",
         "Mira Castell", "Leon Haddad"],
        ["It was founded by {value}, a merchant who built the first houses beside the road.",
         "According to the records, the {kind} was founded by {value} nearly four hundred years ago.",
         "The settlement was founded by {value}, whose statue still stands near the well."],
    ),
    "river": (
        "Which river flows through {name}?",
        ["the Orla", "the Venn", "the Sarth", "the Brisk", "the Malde", "the Tovar", "the Ilse",
         "the Koren", "the Dessa", "the Ambry", "the Fenwick", "the Lusk", "the Parro", "the Quell",
         "the Rhody", "the Saska", "the Tamsin", "the Ulver", "the Varda", "the Wenna", "the Yarrow",
         "the Zelen", "the Corra", "the Dunmere", "the Elda", "the Garrow", "the Hessel",
         "the Jorun", "the Kessa", "the Lorne", "the Mirren", "the Nalda"],
        ["The river {value} flows through it, dividing the old quarter from the new one.",
         "The river that flows through the {kind} is {value}; its bridges are centuries old.",
         "Its mills once turned on the water of {value}, the river that flows past the square."],
    ),
    "landmark": (
        "What is the most famous building in {name}?",
        ["the Clock Tower of Saint Amel", "the Red Granary", "the Glass Library", "the Old Mint",
         "the Lighthouse of Brae", "the Bishop's Bridge", "the Spiral Observatory", "the Salt Hall",
         "the Weavers' Guildhouse", "the Copper Dome", "the Nine Arches", "the White Abbey",
         "the Round Theatre", "the Iron Market", "the Tower of Winds", "the Painted Chapel",
         "the Stone Customs House", "the Crooked Belfry", "the Water Palace", "the Grain Exchange",
         "the Blue Mosque of Harun", "the Merchants' Arcade", "the Sundial Gate", "the Long Barracks",
         "the Twin Towers of Elm", "the Pilgrims' Inn", "the Old Courthouse", "the Rope Walk",
         "the Fisher Church", "the Marble Baths", "the Echo Hall", "the Citadel of Oren"],
        ["Its most famous building is {value}, which appears on every postcard.",
         "The best-known building in the {kind} is {value}, restored after the great fire.",
         "Travellers seldom leave without seeing {value}, the most famous building for miles."],
    ),
    "food": (
        "What food is {name} known for?",
        ["plum dumplings", "smoked eel", "chestnut bread", "lamb stew with quince",
         "honey cakes", "pickled herring", "goat cheese", "buckwheat pancakes", "fish soup",
         "almond biscuits", "roasted peppers", "barley porridge", "sour cherry pie",
         "mushroom pies", "spiced sausages", "rice pudding", "onion tart", "salted cod",
         "walnut cake", "lentil soup", "apple fritters", "poppy-seed rolls", "baked trout",
         "cabbage rolls", "sesame flatbread", "pear brandy", "mutton dumplings", "fig jam",
         "potato cakes", "clam chowder", "rye crackers", "carrot halva"],
        ["The {kind} is known for its {value}, served in every tavern.",
         "Its kitchens are known for {value}, a food cooked the same way for generations.",
         "People travel a long way to taste its {value}, the food it is known for."],
    ),
}

# Paragraphs with no fact a query asks about; they pad long documents to their length.
_FILLER = [
    "The {kind}'s streets are narrow and steep, and most houses have thick walls of pale stone.",
    "In winter the wind comes down from the north and the market closes early in the afternoon.",
    "Its schools are small, and many young people leave for the capital to study or work.",
    "A road built in the last century connects it with the larger settlements of the region.",
    "The climate is mild for most of the year, though summer storms can be sudden and heavy.",
    "Its council meets once a month in a room above the old market, and meetings are open to all.",
    "Most of the land around the {kind} is divided into small fields separated by low walls.",
    "Its population grew quickly after the railway arrived and has changed little since then.",
    "The {kind} has a small museum with tools, maps and letters collected by local families.",
    "Several families have kept the same shops on its main street for more than a hundred years.",
    "A bus leaves its square twice a day, and the journey to the coast takes about three hours.",
    "Its houses are painted in bright colours, a custom that began after a cholera outbreak.",
    "The {kind}'s archives were damaged by a flood, so parts of its early history are uncertain.",
    "Its football club plays on a field behind the church and has never left the regional league.",
    "Older residents still speak a dialect that visitors from the capital find hard to follow.",
    "The {kind} has two doctors, a pharmacy and a small clinic that opens on weekday mornings.",
    "In the evenings its cafés fill with people playing cards and arguing about the weather.",
    "Its library lends books to the surrounding farms from a cart that travels every Thursday.",
]

_ONSETS = ["ar", "bel", "cor", "dun", "el", "fen", "gal", "hal", "is", "kel", "lor", "mar", "nor",
           "or", "pel", "quin", "ros", "sel", "tor", "ul", "val", "wen", "yar", "zan"]
_MIDDLES = ["", "a", "e", "i", "o", "an", "en", "ir", "ol", "um"]
_CODAS = ["vale", "mere", "ford", "holm", "wick", "stead", "burg", "dor", "gate", "moor", "by",
          "ridge", "haven", "thorpe", "field", "ness"]


def invented_names(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct invented place names, e.g. ``Ardenvale``."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = (rng.choice(_ONSETS) + rng.choice(_MIDDLES) + rng.choice(_CODAS)).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def approximate_tokens(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free estimate (1.3 tokens per word) for building sets without a model."""
    return [round(len(t.split()) * 1.3) for t in texts]


def contextual_set(num_documents: int = 24, target_tokens: int = 200, seed: int = 0,
                   count_tokens: TokenCounter = approximate_tokens) -> ContextualSet:
    """Build the set: ``num_documents`` places, each document about ``target_tokens`` long.

    Documents below the length of their six fact paragraphs are as short as those allow (about
    170 MiniLM tokens); longer targets add filler paragraphs between the facts, so facts sit at
    every depth. ``count_tokens`` measures paragraphs (use the model's ``count_tokens``).
    """
    max_docs = min(len(values) for _, values, _ in _FACTS.values())
    if not 1 <= num_documents <= max_docs:
        raise ValueError(f"num_documents must be in [1, {max_docs}], got {num_documents}")
    rng = random.Random(seed)
    names = invented_names(num_documents, rng)
    # Each fact value belongs to one document only, so every query has one right answer.
    values = {fact: rng.sample(pool, num_documents) for fact, (_, pool, _) in _FACTS.items()}
    filler_tokens = count_tokens(_FILLER)
    documents, queries = [], []
    for d, name in enumerate(names):
        kind = rng.choice(_KINDS)
        article = "an" if kind[0] in "aeiou" else "a"
        opening = (f"{name} is {article} {kind} {rng.choice(_REGIONS)}, home to about "
                   f"{rng.randrange(2, 60) * 500} people.")
        facts = list(_FACTS)
        rng.shuffle(facts)
        fact_paragraphs = [rng.choice(_FACTS[f][2]).format(value=values[f][d], kind=kind)
                           for f in facts]
        used = sum(count_tokens([opening, *fact_paragraphs]))
        fillers: list[str] = []
        pool = list(range(len(_FILLER)))
        while used < target_tokens:
            if not pool:
                pool = list(range(len(_FILLER)))
            i = pool.pop(rng.randrange(len(pool)))
            fillers.append(_FILLER[i].format(kind=kind))
            used += filler_tokens[i]
        # Fact paragraphs at random depths among the fillers (order of the fillers kept).
        body: list[tuple[str, str | None]] = [(p, None) for p in fillers]
        for fact, paragraph in zip(facts, fact_paragraphs, strict=True):
            body.insert(rng.randrange(len(body) + 1), (paragraph, fact))
        paragraphs = [(opening, None), *body]
        text, spans = _join(p for p, _ in paragraphs)
        doc = ContextualDocument(f"place-{d:03d}", name, kind, text, spans)
        documents.append(doc)
        for c, (_, fact) in enumerate(paragraphs):
            if fact is not None:
                queries.append(ContextualQuery(_FACTS[fact][0].format(name=name), d, c, fact))
    return ContextualSet(documents, queries, target_tokens)


def named_chunk_texts(doc: ContextualDocument) -> list[str]:
    """The chunks with the subject written in front, a reference for what is findable."""
    return [text if c == 0 else f"{doc.subject}: {text}" for c, text in enumerate(doc.chunk_texts)]


def _join(paragraphs) -> tuple[str, list[tuple[int, int]]]:
    parts, spans, at = [], [], 0
    for p in paragraphs:
        spans.append((at, at + len(p)))
        parts.append(p)
        at += len(p) + 2
    return "\n\n".join(parts), spans
