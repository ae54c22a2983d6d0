"""A small English sentence grammar for synthetic corpora.

The grammar draws lower-case sentences of 4 to 12 words (no punctuation) from
hand-written word lists (people, animals, things, places, times, numbers,
adjectives, adverbs, verbs with their past forms) through a dozen sentence
templates, e.g.::

    yesterday the old farmer carried the red basket near the river
    seven wooden boxes were under the table
    did the baker open the heavy door this morning

Every random choice goes through the ``random.Random`` given by the caller,
so the output is deterministic for a seeded generator (``random.Random`` with
an int or str seed is stable across Python versions and processes).

:func:`make_disjoint_sentence_sets` draws several sets (e.g. train, dev,
test) whose sentences never repeat within or across sets, comparing
normalized text (:func:`normalize_text`).
"""

from __future__ import annotations

import random
import re
from typing import Callable, Dict, FrozenSet, List, Mapping, Sequence, Tuple

# ---------------------------------------------------------------------------
# Word lists. Nouns are singular; plurals come from _plural (irregular ones
# listed in _IRREGULAR_PLURALS). Verbs are (base, third person, past).
# ---------------------------------------------------------------------------

PEOPLE: Tuple[str, ...] = (
    "teacher", "doctor", "farmer", "baker", "pilot", "sailor", "painter", "driver",
    "student", "nurse", "singer", "dancer", "writer", "lawyer", "soldier", "gardener",
    "fisherman", "child", "woman", "man", "girl", "boy", "friend", "brother", "sister",
    "mother", "father", "uncle", "aunt", "cousin", "grandmother", "grandfather", "king",
    "queen", "prince", "princess", "captain", "chef", "waiter", "clerk", "banker",
    "carpenter", "plumber", "mechanic", "engineer", "scientist", "professor", "judge",
    "officer", "guard", "hunter", "shepherd", "merchant", "tailor", "miller", "poet",
    "actor", "artist", "musician", "player", "runner", "swimmer", "climber", "stranger",
    "visitor", "guest", "manager", "secretary", "director", "mayor", "neighbor", "librarian",
)

ANIMALS: Tuple[str, ...] = (
    "dog", "cat", "horse", "cow", "sheep", "goat", "pig", "rabbit", "mouse", "bird",
    "duck", "goose", "chicken", "fox", "wolf", "bear", "deer", "lion", "tiger", "monkey",
    "donkey", "frog", "owl", "eagle", "parrot", "turtle", "snake", "squirrel", "camel",
    "elephant", "zebra", "whale", "dolphin", "puppy", "kitten",
)

THINGS: Tuple[str, ...] = (
    "apple", "book", "letter", "box", "basket", "bottle", "cup", "plate", "bowl", "spoon",
    "knife", "fork", "chair", "table", "lamp", "clock", "key", "coin", "ring", "hat",
    "coat", "shirt", "shoe", "boot", "glove", "scarf", "bag", "ticket", "map", "picture",
    "window", "door", "ball", "kite", "drum", "guitar", "piano", "violin", "bell", "candle",
    "blanket", "pillow", "mirror", "brush", "comb", "pencil", "pen", "notebook", "newspaper",
    "magazine", "envelope", "parcel", "gift", "toy", "doll", "wagon", "bicycle", "car",
    "truck", "boat", "train", "bus", "ladder", "rope", "bucket", "hammer", "nail", "shovel",
    "wheel", "tent", "flag", "umbrella", "cake", "pie", "sandwich", "cookie", "orange",
    "banana", "lemon", "pear", "peach", "cherry", "potato", "tomato", "carrot", "onion",
    "egg", "flower", "rose", "tree", "leaf", "stone", "shell", "feather", "stick", "bone",
    "jar", "kettle", "pot", "pan", "sock", "button", "necklace", "watch", "wallet", "purse",
    "radio", "camera", "phone", "computer", "engine", "rocket", "barrel", "crate", "sack",
    "trunk", "chest", "cabinet", "drawer", "shelf", "sofa", "bench", "fence", "gate",
    "carpet", "curtain", "helmet", "jacket", "medal", "puzzle", "robot", "saddle",
    "sword", "shield", "trophy", "vase", "whistle", "anchor", "compass", "lantern", "mask",
    "paintbrush", "suitcase", "teapot", "towel", "wreath", "cushion", "napkin", "ribbon",
)

PLACES: Tuple[str, ...] = (
    "kitchen", "garden", "park", "market", "station", "library", "school", "office",
    "forest", "river", "lake", "beach", "village", "city", "town", "street", "road",
    "bridge", "harbor", "airport", "hospital", "museum", "bakery", "shop", "farm", "barn",
    "field", "hill", "mountain", "valley", "cave", "island", "castle", "palace", "tower",
    "hall", "theater", "stadium", "corner", "hotel", "restaurant", "factory", "warehouse",
    "garage", "attic", "basement", "cellar", "yard", "playground", "desert", "jungle",
    "meadow", "orchard", "pond", "stream", "shore", "cottage", "cabin", "classroom",
    "hallway", "bedroom", "balcony", "church", "prison", "temple", "circus", "zoo",
)

PLACE_PREPOSITIONS: Tuple[str, ...] = (
    "in", "at", "near", "behind", "beside", "inside", "outside", "across", "along",
    "around", "past", "by", "below", "above", "beyond", "toward",
)

THING_PREPOSITIONS: Tuple[str, ...] = ("on", "under", "beside", "behind", "near", "inside")

TIMES: Tuple[str, ...] = (
    "yesterday", "today", "tomorrow", "tonight", "this morning", "this afternoon",
    "this evening", "last night", "last week", "last year", "next week", "next month",
    "next year", "every day", "every morning", "at noon", "at midnight", "at dawn",
    "at sunset", "before lunch", "after dinner", "after breakfast", "on monday",
    "on tuesday", "on wednesday", "on thursday", "on friday", "on saturday", "on sunday",
    "in january", "in february", "in march", "in april", "in may", "in june", "in july",
    "in august", "in september", "in october", "in november", "in december",
    "in spring", "in summer", "in autumn", "in winter", "an hour ago", "once again",
    "later today", "earlier today", "soon", "right away",
)

NUMBERS: Tuple[str, ...] = (
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "a hundred",
)

NAMES: Tuple[str, ...] = (
    "anna", "peter", "maria", "john", "susan", "david", "emma", "james", "lucy", "robert",
    "sarah", "thomas", "helen", "daniel", "alice", "george", "laura", "michael", "julia",
    "william", "nora", "oliver", "rachel", "simon", "martha", "victor", "clara", "henry",
    "diana", "frank",
)

ADJECTIVES: Tuple[str, ...] = (
    "red", "blue", "green", "yellow", "white", "black", "brown", "purple", "pink", "gray",
    "big", "small", "little", "large", "tiny", "huge", "tall", "short", "long", "wide",
    "narrow", "heavy", "old", "new", "young", "ancient", "modern", "clean", "dirty", "wet",
    "dry", "warm", "cold", "hot", "cool", "soft", "hard", "smooth", "rough", "bright",
    "dark", "quiet", "loud", "empty", "full", "broken", "shiny", "wooden", "golden",
    "silver", "plastic", "strange", "simple", "fancy", "cheap", "expensive", "famous",
    "friendly", "gentle", "brave", "clever", "lazy", "busy", "tired", "hungry", "lucky",
    "polite", "honest", "careful", "curious", "calm", "proud", "kind", "wise", "quick",
    "slow", "strong", "weak", "rich", "poor", "pretty", "beautiful", "lovely", "fresh",
    "sweet", "sour", "bitter", "salty", "tasty", "fine", "nice", "plain", "round",
    "square", "flat", "sharp", "thick", "thin", "deep", "fragile", "ordinary", "unusual",
    "tidy", "messy", "sleepy", "noisy", "silent", "dusty", "rusty", "striped", "spotted",
    "woolen", "secret", "spare", "favorite", "useful", "precious", "elegant",
)

# Adjectives that describe people or animals well (a subset, for variety).
PERSON_ADJECTIVES: Tuple[str, ...] = (
    "old", "young", "tall", "short", "friendly", "gentle", "brave", "clever", "lazy", "busy",
    "tired", "hungry", "lucky", "polite", "honest", "careful", "curious", "calm", "proud",
    "kind", "wise", "quick", "slow", "strong", "famous", "little", "quiet", "noisy",
    "sleepy", "strange", "elegant", "patient", "cheerful", "nervous", "serious", "clumsy",
)

ADVERBS: Tuple[str, ...] = (
    "quickly", "slowly", "carefully", "quietly", "loudly", "gently", "suddenly", "finally",
    "easily", "rarely", "often", "always", "never", "sometimes", "usually", "already",
    "almost", "nearly", "really", "simply", "certainly", "probably", "politely", "calmly",
    "proudly", "bravely", "eagerly", "patiently", "silently", "boldly", "neatly", "softly",
    "firmly", "briefly", "secretly", "openly", "gladly", "kindly", "honestly",
    "warmly", "wisely", "barely", "clearly", "rapidly", "steadily", "happily",
)

# Verbs taking a thing as object: (base, third person singular, past).
THING_VERBS: Tuple[Tuple[str, str, str], ...] = (
    ("find", "finds", "found"), ("carry", "carries", "carried"), ("paint", "paints", "painted"),
    ("open", "opens", "opened"), ("close", "closes", "closed"), ("clean", "cleans", "cleaned"),
    ("wash", "washes", "washed"), ("buy", "buys", "bought"), ("sell", "sells", "sold"),
    ("bring", "brings", "brought"), ("take", "takes", "took"), ("hold", "holds", "held"),
    ("drop", "drops", "dropped"), ("lift", "lifts", "lifted"), ("push", "pushes", "pushed"),
    ("pull", "pulls", "pulled"), ("catch", "catches", "caught"), ("throw", "throws", "threw"),
    ("fix", "fixes", "fixed"), ("build", "builds", "built"), ("break", "breaks", "broke"),
    ("hide", "hides", "hid"), ("steal", "steals", "stole"), ("borrow", "borrows", "borrowed"),
    ("keep", "keeps", "kept"), ("move", "moves", "moved"), ("pack", "packs", "packed"),
    ("fill", "fills", "filled"), ("empty", "empties", "emptied"), ("cook", "cooks", "cooked"),
    ("bake", "bakes", "baked"), ("eat", "eats", "ate"), ("watch", "watches", "watched"),
    ("see", "sees", "saw"), ("notice", "notices", "noticed"), ("forget", "forgets", "forgot"),
    ("remember", "remembers", "remembered"), ("want", "wants", "wanted"),
    ("need", "needs", "needed"), ("like", "likes", "liked"), ("order", "orders", "ordered"),
    ("deliver", "delivers", "delivered"), ("send", "sends", "sent"), ("sign", "signs", "signed"),
    ("draw", "draws", "drew"), ("count", "counts", "counted"), ("check", "checks", "checked"),
    ("measure", "measures", "measured"), ("weigh", "weighs", "weighed"),
    ("collect", "collects", "collected"), ("gather", "gathers", "gathered"),
    ("share", "shares", "shared"), ("pick", "picks", "picked"), ("choose", "chooses", "chose"),
    ("polish", "polishes", "polished"), ("wrap", "wraps", "wrapped"), ("lose", "loses", "lost"),
    ("repair", "repairs", "repaired"), ("sort", "sorts", "sorted"),
    ("fold", "folds", "folded"), ("cover", "covers", "covered"), ("mark", "marks", "marked"),
    ("return", "returns", "returned"), ("examine", "examines", "examined"),
    ("describe", "describes", "described"), ("admire", "admires", "admired"),
    ("inspect", "inspects", "inspected"), ("replace", "replaces", "replaced"),
    ("drag", "drags", "dragged"), ("shake", "shakes", "shook"),
)

# Verbs taking a person or animal as object.
AGENT_VERBS: Tuple[Tuple[str, str, str], ...] = (
    ("follow", "follows", "followed"), ("chase", "chases", "chased"), ("visit", "visits", "visited"),
    ("call", "calls", "called"), ("help", "helps", "helped"), ("meet", "meets", "met"),
    ("greet", "greets", "greeted"), ("thank", "thanks", "thanked"), ("teach", "teaches", "taught"),
    ("invite", "invites", "invited"), ("warn", "warns", "warned"), ("ask", "asks", "asked"),
    ("feed", "feeds", "fed"), ("hug", "hugs", "hugged"), ("find", "finds", "found"),
    ("wake", "wakes", "woke"), ("pay", "pays", "paid"), ("hear", "hears", "heard"),
    ("trust", "trusts", "trusted"), ("remind", "reminds", "reminded"), ("guide", "guides", "guided"),
    ("rescue", "rescues", "rescued"), ("photograph", "photographs", "photographed"),
    ("interview", "interviews", "interviewed"), ("surprise", "surprises", "surprised"),
    ("tickle", "tickles", "tickled"), ("forgive", "forgives", "forgave"),
)

# Intransitive verbs: (base, third person singular, past).
INTRANSITIVE_VERBS: Tuple[Tuple[str, str, str], ...] = (
    ("arrive", "arrives", "arrived"), ("wait", "waits", "waited"), ("sleep", "sleeps", "slept"),
    ("laugh", "laughs", "laughed"), ("sing", "sings", "sang"), ("dance", "dances", "danced"),
    ("run", "runs", "ran"), ("walk", "walks", "walked"), ("swim", "swims", "swam"),
    ("jump", "jumps", "jumped"), ("sit", "sits", "sat"), ("stand", "stands", "stood"),
    ("rest", "rests", "rested"), ("work", "works", "worked"), ("play", "plays", "played"),
    ("listen", "listens", "listened"), ("smile", "smiles", "smiled"), ("shout", "shouts", "shouted"),
    ("whisper", "whispers", "whispered"), ("stay", "stays", "stayed"), ("climb", "climbs", "climbed"),
    ("fall", "falls", "fell"), ("travel", "travels", "traveled"), ("cough", "coughs", "coughed"),
    ("hurry", "hurries", "hurried"), ("wander", "wanders", "wandered"), ("relax", "relaxes", "relaxed"),
    ("cry", "cries", "cried"), ("wave", "waves", "waved"), ("study", "studies", "studied"),
)

PRONOUNS: Tuple[Tuple[str, bool], ...] = (
    ("i", False), ("you", False), ("we", False), ("they", False), ("he", True), ("she", True),
)
POSSESSIVES: Tuple[str, ...] = ("my", "your", "his", "her", "our", "their")
MODALS: Tuple[str, ...] = ("will", "can", "should", "must", "might", "could", "would")
QUESTION_STARTS: Tuple[str, ...] = ("did", "can", "will", "could", "should", "would")
INTENTIONS: Tuple[str, ...] = ("want to", "need to", "hope to", "plan to", "forgot to", "tried to")

_IRREGULAR_PLURALS: Dict[str, str] = {
    "child": "children", "woman": "women", "man": "men", "fisherman": "fishermen",
    "mouse": "mice", "goose": "geese", "sheep": "sheep", "deer": "deer", "wolf": "wolves",
    "knife": "knives", "leaf": "leaves", "shelf": "shelves", "scarf": "scarves", "potato": "potatoes",
    "tomato": "tomatoes", "puppy": "puppies",
}

_VOWELS = "aeiou"
_NORMALIZE_RE = re.compile(r"[^a-z' ]+")


def _plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in _VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def _article(word: str) -> str:
    return "an" if word[0] in _VOWELS else "a"


def normalize_text(text: str) -> str:
    """Lower-case, drop characters other than letters/apostrophes, squeeze spaces."""
    return " ".join(_NORMALIZE_RE.sub(" ", text.lower()).split())


class SentenceGrammar:
    """Random English sentences from a template grammar.

    Args:
        min_words: Shortest sentence in words (at least 4).
        max_words: Longest sentence in words (at most 12).
    """

    def __init__(self, min_words: int = 4, max_words: int = 12) -> None:
        if not 4 <= min_words <= max_words <= 12:
            raise ValueError(f"need 4 <= min_words <= max_words <= 12, got {min_words}, {max_words}")
        self.min_words = min_words
        self.max_words = max_words
        self._templates: Tuple[Callable[[random.Random], List[str]], ...] = (
            self._t_action,
            self._t_adverb_action,
            self._t_modal,
            self._t_number_location,
            self._t_intransitive,
            self._t_names_intransitive,
            self._t_request,
            self._t_pronoun_count,
            self._t_description,
            self._t_there_is,
            self._t_question,
            self._t_intention,
            self._t_possession,
            self._t_agent_action,
        )

    # -- phrases ------------------------------------------------------------
    @staticmethod
    def _maybe(rng: random.Random, p: float) -> bool:
        return rng.random() < p

    def _thing_np(self, rng: random.Random, det: str = "the") -> List[str]:
        words = [rng.choice(ADJECTIVES)] if self._maybe(rng, 0.5) else []
        words.append(rng.choice(THINGS))
        if det == "a":
            det = _article(words[0])
        return [det] + words

    def _agent_np(self, rng: random.Random) -> Tuple[List[str], bool]:
        """A person or animal; returns (words, is_singular)."""
        roll = rng.random()
        if roll < 0.2:
            return [rng.choice(NAMES)], True
        noun = rng.choice(PEOPLE) if roll < 0.7 else rng.choice(ANIMALS)
        adj = [rng.choice(PERSON_ADJECTIVES)] if self._maybe(rng, 0.4) else []
        if self._maybe(rng, 0.25):
            det = rng.choice(("the", "the", "my", "our", "their", "some", "two", "three", "several"))
            return [det] + adj + [_plural(noun)], False
        det = rng.choice(("the", "the", "the", "my", "our", "a", "that"))
        if det == "a":
            det = _article((adj + [noun])[0])
        return [det] + adj + [noun], True

    def _subject(self, rng: random.Random) -> Tuple[List[str], bool]:
        """An agent noun phrase or a pronoun; returns (words, is_third_singular)."""
        if self._maybe(rng, 0.2):
            pronoun, third_singular = rng.choice(PRONOUNS)
            return [pronoun], third_singular
        return self._agent_np(rng)

    def _finite(self, rng: random.Random, forms: Tuple[str, str, str], third_singular: bool) -> str:
        """Past tense (65 %) or present tense agreeing with the subject."""
        if self._maybe(rng, 0.65):
            return forms[2]
        return forms[1] if third_singular else forms[0]

    def _place_pp(self, rng: random.Random) -> List[str]:
        return [rng.choice(PLACE_PREPOSITIONS), "the", rng.choice(PLACES)]

    def _time(self, rng: random.Random) -> List[str]:
        return rng.choice(TIMES).split()

    def _optional_tail(self, rng: random.Random, p_place: float, p_time: float) -> List[str]:
        tail: List[str] = []
        if self._maybe(rng, p_place):
            tail += self._place_pp(rng)
        if self._maybe(rng, p_time):
            tail += self._time(rng)
        return tail

    # -- templates ----------------------------------------------------------
    def _t_action(self, rng: random.Random) -> List[str]:
        head = self._time(rng) if self._maybe(rng, 0.25) else []
        subject, third = self._subject(rng)
        verb = self._finite(rng, rng.choice(THING_VERBS), third)
        return head + subject + [verb] + self._thing_np(rng) + self._optional_tail(rng, 0.5, 0.0)

    def _t_adverb_action(self, rng: random.Random) -> List[str]:
        subject, third = self._subject(rng)
        verb = self._finite(rng, rng.choice(THING_VERBS), third)
        tail = self._optional_tail(rng, 0.3, 0.3)
        return subject + [rng.choice(ADVERBS), verb] + self._thing_np(rng) + tail

    def _t_modal(self, rng: random.Random) -> List[str]:
        head = [rng.choice(NAMES), rng.choice(MODALS)]
        if self._maybe(rng, 0.6):
            tail = self._optional_tail(rng, 0.4, 0.5)
            return head + [rng.choice(THING_VERBS)[0]] + self._thing_np(rng) + tail
        return head + [rng.choice(INTRANSITIVE_VERBS)[0]] + self._optional_tail(rng, 0.8, 0.6)

    def _t_number_location(self, rng: random.Random) -> List[str]:
        adj = [rng.choice(ADJECTIVES)] if self._maybe(rng, 0.6) else []
        be = rng.choice(("were", "are"))
        if self._maybe(rng, 0.5):
            where = [rng.choice(THING_PREPOSITIONS), "the", rng.choice(THINGS)]
        else:
            where = self._place_pp(rng)
        return rng.choice(NUMBERS).split() + adj + [_plural(rng.choice(THINGS)), be] + where

    def _t_intransitive(self, rng: random.Random) -> List[str]:
        subject, third = self._agent_np(rng)
        verb = self._finite(rng, rng.choice(INTRANSITIVE_VERBS), third)
        adv = [rng.choice(ADVERBS)] if self._maybe(rng, 0.25) else []
        return subject + adv + [verb] + self._place_pp(rng) + self._optional_tail(rng, 0.0, 0.5)

    def _t_names_intransitive(self, rng: random.Random) -> List[str]:
        first, second = rng.sample(NAMES, 2)
        verb = self._finite(rng, rng.choice(INTRANSITIVE_VERBS), False)
        adv = [rng.choice(ADVERBS)] if self._maybe(rng, 0.3) else []
        return [first, "and", second] + adv + [verb] + self._optional_tail(rng, 0.7, 0.4)

    def _t_request(self, rng: random.Random) -> List[str]:
        verb = rng.choice(THING_VERBS)[0]
        return ["please", verb] + self._thing_np(rng) + self._optional_tail(rng, 0.6, 0.4)

    def _t_pronoun_count(self, rng: random.Random) -> List[str]:
        pronoun, third = rng.choice(PRONOUNS)
        verb = self._finite(rng, rng.choice(THING_VERBS), third)
        adj = [rng.choice(ADJECTIVES)] if self._maybe(rng, 0.5) else []
        number = rng.choice(NUMBERS).split()
        obj = number + adj + [_plural(rng.choice(THINGS))]
        return [pronoun, verb] + obj + self._optional_tail(rng, 0.3, 0.5)

    def _t_description(self, rng: random.Random) -> List[str]:
        first, second = rng.sample(ADJECTIVES, 2)
        be = rng.choice(("is", "was", "looks", "seems", "felt"))
        det = rng.choice(("the", "this", "that", "my", "your", "our"))
        return [det, rng.choice(THINGS), be, first, "and", second] + self._optional_tail(rng, 0.0, 0.3)

    def _t_there_is(self, rng: random.Random) -> List[str]:
        if self._maybe(rng, 0.5):
            middle = ["there", rng.choice(("is", "was"))] + self._thing_np(rng, det="a")
        else:
            number = rng.choice(NUMBERS).split()
            middle = ["there", rng.choice(("are", "were"))] + number + [_plural(rng.choice(THINGS))]
        return middle + self._place_pp(rng) + self._optional_tail(rng, 0.0, 0.3)

    def _t_question(self, rng: random.Random) -> List[str]:
        verb = rng.choice(THING_VERBS)[0]
        subject, _ = self._agent_np(rng)
        tail = self._optional_tail(rng, 0.3, 0.3)
        return [rng.choice(QUESTION_STARTS)] + subject + [verb] + self._thing_np(rng) + tail

    def _t_intention(self, rng: random.Random) -> List[str]:
        pronoun = rng.choice(PRONOUNS)[0]
        if self._maybe(rng, 0.7):
            obj, _ = self._agent_np(rng)
            rest = [rng.choice(AGENT_VERBS)[0]] + obj
        else:
            rest = [rng.choice(INTRANSITIVE_VERBS)[0]]
        return [pronoun] + rng.choice(INTENTIONS).split() + rest + self._optional_tail(rng, 0.4, 0.4)

    def _t_possession(self, rng: random.Random) -> List[str]:
        adj = [rng.choice(ADJECTIVES)] if self._maybe(rng, 0.6) else []
        be = rng.choice(("was", "is", "stayed", "remained"))
        tail = self._place_pp(rng) + self._optional_tail(rng, 0.0, 0.5)
        return [rng.choice(POSSESSIVES)] + adj + [rng.choice(THINGS), be] + tail

    def _t_agent_action(self, rng: random.Random) -> List[str]:
        subject, third = self._subject(rng)
        verb = self._finite(rng, rng.choice(AGENT_VERBS), third)
        adv = [rng.choice(ADVERBS)] if self._maybe(rng, 0.3) else []
        obj, _ = self._agent_np(rng)
        return subject + adv + [verb] + obj + self._optional_tail(rng, 0.4, 0.3)

    # -- public API ---------------------------------------------------------
    def sentence(self, rng: random.Random) -> str:
        """Draw one sentence (lower-case words separated by single spaces)."""
        while True:
            words = rng.choice(self._templates)(rng)
            if self.min_words <= len(words) <= self.max_words:
                return " ".join(words)

    @staticmethod
    def spoken_form(sentence: str) -> str:
        """The text to synthesize: the sentence with final punctuation.

        Questions (starting with an auxiliary) end with ``?`` so that the
        synthesizer uses a rising intonation; other sentences with ``.``.
        """
        first = sentence.split(" ", 1)[0]
        return sentence + ("?" if first in QUESTION_STARTS else ".")


def vocabulary() -> FrozenSet[str]:
    """Every word the grammar can produce."""
    words: set = set()

    def add(items: Sequence[str]) -> None:
        for item in items:
            words.update(item.split())

    for nouns in (PEOPLE, ANIMALS, THINGS):
        add(nouns)
        add([_plural(n) for n in nouns])
    add(PLACES + PLACE_PREPOSITIONS + THING_PREPOSITIONS + TIMES + NUMBERS + NAMES)
    add(ADJECTIVES + PERSON_ADJECTIVES + ADVERBS + POSSESSIVES + MODALS + QUESTION_STARTS + INTENTIONS)
    for verbs in (THING_VERBS, AGENT_VERBS, INTRANSITIVE_VERBS):
        for forms in verbs:
            add(forms)
    add([p for p, _ in PRONOUNS])
    add(["the", "a", "an", "and", "please", "there", "is", "are", "was", "were", "this", "that",
         "looks", "seems", "felt", "stayed", "remained", "some", "two", "three", "several"])
    return frozenset(words)


def make_disjoint_sentence_sets(
    sizes: Mapping[str, int],
    rng: random.Random,
    grammar: "SentenceGrammar | Mapping[str, SentenceGrammar] | None" = None,
    max_tries_per_sentence: int = 1000,
) -> Dict[str, List[str]]:
    """Draw sentence sets in which no normalized sentence occurs twice.

    Sets are filled in the order of ``sizes`` from one generator, so the
    result is deterministic given ``rng``'s state and ``sizes``.

    Args:
        sizes: Set name to number of sentences, e.g.
            ``{"train": 2000, "dev": 200, "test": 400}``.
        rng: Source of randomness.
        grammar: One grammar for all sets, or one per set name (missing
            names use the default grammar).
        max_tries_per_sentence: Draws allowed per needed sentence before
            giving up.

    Returns:
        Set name to its sentences (in draw order).

    Raises:
        ValueError: If the grammar cannot produce enough distinct sentences.
    """
    default = SentenceGrammar()
    seen: set = set()
    out: Dict[str, List[str]] = {}
    for name, size in sizes.items():
        if size < 0:
            raise ValueError(f"negative size {size} for set {name!r}")
        if isinstance(grammar, Mapping):
            gram = grammar.get(name, default)
        else:
            gram = grammar or default
        sentences: List[str] = []
        tries = 0
        while len(sentences) < size:
            tries += 1
            if tries > max_tries_per_sentence * max(size, 1):
                raise ValueError(f"could not draw {size} distinct sentences for set {name!r}")
            sentence = gram.sentence(rng)
            key = normalize_text(sentence)
            if key in seen:
                continue
            seen.add(key)
            sentences.append(sentence)
        out[name] = sentences
    return out
