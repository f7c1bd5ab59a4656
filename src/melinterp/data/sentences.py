"""A seeded generator of varied English sentences for the synthetic corpus.

Every sentence is built from a small grammar and the word lists below, all written for this module: no prose
is copied from anywhere. The grammar makes statements, yes/no and wh- questions, exclamations and requests of
4 to 16 words, with names, places, numbers, dates, clock times and prices, in past, present and future tense.

Numbers are written as words ("twenty seven", "half past six"), so that espeak-ng, flite and the text front
end all read them the same way.

The same ``seed`` always gives the same list, in the same order::

    >>> sentences = generate_sentences(5000, seed=0)
    >>> len(set(sentences)), len(vocabulary(sentences)) > 800
    (5000, True)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

# numbers are spelled by the text front end's own speller, so the engines and the phonemiser read them alike
from melinterp.text.normalize import number_to_words, ordinal_to_words, year_to_words  # noqa: F401

# --------------------------------------------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------------------------------------------

NAMES = (
    "Anna Martha Oliver Lucas Sophie Daniel Grace Henry Julia Samuel Clara Victor Nora Felix Hannah Isaac Laura "
    "Peter Rosa Simon Emma George Alice Thomas Maria David Helen Oscar Ruth Walter Lily Edward Chloe Frank Irene "
    "Jacob Karen Leo Megan Nathan Olivia Paul Rachel Steven Tina Vincent Wendy Yvonne Zachary Amelia Benjamin "
    "Caroline Dorothy Eleanor Francis Gabriel Harriet Ivan Joseph Kevin Lucy Michael Nicholas Patrick Rebecca "
    "Sarah Timothy Victoria William Bianca Connor Diana Elliot Fiona Gordon Holly Jasper Kate Marcus Naomi Philip "
    "Ronald Stella Theo Vera Arthur Beatrice Colin Edith Hugo Agnes Louis Mabel Rupert Sylvia Tobias Ingrid Mason"
).split()

CITIES = (
    "Paris London Boston Denver Chicago Madrid Lisbon Dublin Vienna Berlin Prague Oslo Helsinki Cairo Tokyo "
    "Sydney Toronto Seattle Austin Phoenix Atlanta Miami Dallas Houston Portland Glasgow Edinburgh Brighton "
    "Oxford Cambridge Geneva Zurich Naples Venice Florence Athens Warsaw Budapest Montreal Vancouver Melbourne "
    "Auckland Nairobi Lima Santiago Havana Istanbul Seoul Amsterdam Brussels Copenhagen Stockholm Hamburg Munich "
    "Milan Rome Barcelona Valencia Seville Manchester Liverpool Bristol Belfast Cardiff Memphis Nashville Orlando "
    "Baltimore Pittsburgh Detroit Minneapolis Chester York Bath"
).split()

REGIONS = (
    "Texas Ohio Kansas Oregon Nevada Vermont Maine Alaska Georgia Florida Montana Kent Wales Norway Sweden "
    "Canada Mexico Brazil Peru Chile Egypt Kenya Japan Spain Italy Greece Poland Iceland Scotland Ireland "
    "Portugal Austria Denmark Finland Morocco Argentina Australia India China Korea Vietnam Holland Belgium"
).split()

PLACES = CITIES + REGIONS

RELATIVES = (
    "brother sister uncle aunt cousin friend grandmother grandfather neighbor teacher boss mother father "
    "son daughter nephew niece roommate partner classmate"
).split()

OCCUPATIONS = (
    "baker teacher doctor farmer driver nurse pilot painter sailor gardener mechanic librarian carpenter "
    "fisherman writer singer student waiter tailor engineer captain judge chef clerk dentist plumber "
    "photographer musician scientist shepherd butcher jeweler lawyer pharmacist architect"
).split()

# Things a person can pick up, carry or sell: (singular, plural).
_REGULAR_THINGS = (
    "basket book letter bottle lamp chair map ticket key coin shirt jacket hat scarf glove boot cup plate bowl "
    "spoon fork candle mirror clock radio camera guitar violin drum kettle blanket pillow pencil notebook "
    "envelope parcel suitcase umbrella ladder bucket hammer rope ribbon button marble feather shell stone brick "
    "tile carpet curtain painting photograph poster jar apple orange lemon pear carrot onion cake pie cookie "
    "biscuit melon banana cabbage pumpkin bicycle helmet wallet necklace bracelet ring trumpet flute kite "
    "puzzle postcard calendar teapot saucer napkin towel sweater sock sandal backpack magazine newspaper "
    "cushion vase basin shovel broom lantern compass telescope microscope globe statue doll sticker crayon "
    "rug quilt jug mug tray"
).split()

_IRREGULAR_THINGS = {
    "box": "boxes", "watch": "watches", "knife": "knives", "sandwich": "sandwiches", "peach": "peaches",
    "cherry": "cherries", "potato": "potatoes", "tomato": "tomatoes", "loaf": "loaves", "dress": "dresses",
    "glass": "glasses", "brush": "brushes", "battery": "batteries", "dish": "dishes", "torch": "torches",
    "berry": "berries", "pastry": "pastries", "diary": "diaries", "match": "matches", "leaf": "leaves",
    "shelf": "shelves", "bench": "benches", "lunchbox": "lunchboxes", "paintbrush": "paintbrushes",
}

THINGS: dict[str, str] = {**{word: word + "s" for word in _REGULAR_THINGS}, **_IRREGULAR_THINGS}

ANIMALS: dict[str, str] = {
    "dog": "dogs", "cat": "cats", "horse": "horses", "rabbit": "rabbits", "goose": "geese", "sheep": "sheep",
    "fox": "foxes", "owl": "owls", "duck": "ducks", "mouse": "mice", "pony": "ponies", "goat": "goats",
    "parrot": "parrots", "turtle": "turtles", "squirrel": "squirrels", "deer": "deer", "hen": "hens",
    "lamb": "lambs", "tiger": "tigers", "lion": "lions", "whale": "whales", "dolphin": "dolphins",
    "bee": "bees", "butterfly": "butterflies", "donkey": "donkeys", "puppy": "puppies", "kitten": "kittens",
    "frog": "frogs", "swan": "swans", "pigeon": "pigeons", "badger": "badgers", "otter": "otters",
    "beaver": "beavers", "camel": "camels", "zebra": "zebras", "penguin": "penguins", "seal": "seals",
    "wolf": "wolves", "bear": "bears", "eagle": "eagles", "crow": "crows", "cow": "cows", "pig": "pigs",
}

# Locations, always used with "the" (some are two words).
LOCATIONS = tuple(
    re.split(
        r",\s*",
        "river, bridge, station, market, library, harbor, garden, bakery, museum, kitchen, office, school, church, "
        "hospital, castle, forest, lake, hill, beach, village, farm, stadium, airport, hotel, square, park, tower, "
        "cottage, barn, valley, mountain, island, corner, fountain, gallery, workshop, factory, pier, garage, "
        "cellar, attic, hallway, porch, theater, bookshop, pharmacy, post office, cinema, playground, orchard, "
        "vineyard, meadow, cathedral, lighthouse, greenhouse, train station, bus stop, town hall, city center, "
        "riverbank, waterfall, canal, old mill, shore, cliff, swimming pool, car park, front door, back yard",
    )
)

LOCATION_PREPOSITIONS = (
    "near", "behind", "beside", "inside", "outside", "next to", "in front of", "opposite", "at", "by",
    "not far from", "close to", "on the way to", "around the back of",
)

PATH_PREPOSITIONS = ("across", "along", "around", "through", "past", "toward", "over", "down", "up")

PATH_PLACES = (
    "field", "square", "river", "bridge", "garden", "forest", "meadow", "road", "hill", "street", "park",
    "beach", "valley", "yard", "lawn", "platform", "parking lot", "frozen lake", "narrow path", "empty hall",
)

ADJECTIVES = (
    "old new small large tiny heavy bright dark clean broken shiny wooden golden round narrow wide soft warm "
    "cold wet dry empty full strange simple fancy cheap rare ancient modern useful lovely beautiful quiet noisy "
    "tall short long thin thick smooth rough fragile sturdy colorful plain famous secret lucky favorite spare "
    "tidy messy dusty rusty polished crooked striped spotted enormous delicate peculiar ordinary handsome "
    "elegant clumsy gentle fierce patient cheerful grumpy sleepy hungry curious brave proud lonely precious "
    "ugly pretty expensive awkward sticky fuzzy shallow steep gigantic miniature battered sparkling wrinkled"
).split()

COLORS = (
    "red blue green yellow purple brown gray white black pink scarlet crimson silver turquoise maroon orange "
    "violet lavender amber ivory"
).split()

# Adjectives that describe a state (after "is" / "was").
STATES = (
    "open closed empty full broken clean dirty wet dry warm cold locked ready quiet crowded dark bright safe "
    "heavy expensive cheap late early busy free finished missing"
).split()

FEELINGS = (
    "happy tired nervous excited worried surprised proud angry calm cheerful bored puzzled grateful anxious "
    "delighted exhausted confused relieved"
).split()

WEATHER = "sunny cloudy windy rainy foggy snowy chilly humid freezing warm stormy misty mild bright".split()

DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()

# Transitive verbs: (base, past, third person singular).
_TRANSITIVE = (
    "carry carried carries|find found finds|paint painted paints|fix fixed fixes|sell sold sells|"
    "buy bought buys|borrow borrowed borrows|lose lost loses|wrap wrapped wraps|clean cleaned cleans|"
    "open opened opens|move moved moves|drop dropped drops|measure measured measures|wash washed washes|"
    "notice noticed notices|describe described describes|count counted counts|share shared shares|"
    "order ordered orders|deliver delivered delivers|return returned returns|hide hid hides|keep kept keeps|"
    "bring brought brings|send sent sends|take took takes|hold held holds|lift lifted lifts|pack packed packs|"
    "polish polished polishes|repair repaired repairs|check checked checks|examine examined examines|"
    "mend mended mends|fold folded folds|sort sorted sorts|label labeled labels|weigh weighed weighs|"
    "replace replaced replaces|collect collected collects|inspect inspected inspects|throw threw throws|"
    "catch caught catches|choose chose chooses|forget forgot forgets|grab grabbed grabs|drag dragged drags|"
    "push pushed pushes|pull pulled pulls|hang hung hangs|steal stole steals|break broke breaks|"
    "build built builds|draw drew draws|lend lent lends|leave left leaves|place placed places|"
    "decorate decorated decorates|borrow borrowed borrows|test tested tests|shake shook shakes"
)
TRANSITIVE_VERBS = tuple(tuple(entry.split()) for entry in _TRANSITIVE.split("|"))

# Verbs that need no object: (base, past).
_INTRANSITIVE = (
    "walk walked|run ran|wait waited|sleep slept|laugh laughed|dance danced|sing sang|arrive arrived|"
    "stay stayed|rest rested|work worked|swim swam|wander wandered|shout shouted|whistle whistled|"
    "jump jumped|hurry hurried|pause paused|smile smiled|listen listened|study studied|play played|"
    "cry cried|sit sat|stand stood|read read|cook cooked|knit knitted|paint painted|write wrote|"
    "practice practiced|relax relaxed|argue argued|whisper whispered|complain complained|shiver shivered"
)
INTRANSITIVE_VERBS = tuple(tuple(entry.split()) for entry in _INTRANSITIVE.split("|"))

# Ways of moving along a path: (base, past).
_MOTION = (
    "walk walked|run ran|hurry hurried|wander wandered|stroll strolled|march marched|race raced|"
    "crawl crawled|limp limped|skip skipped|climb climbed|cycle cycled|drive drove|ride rode|swim swam|"
    "sprint sprinted|tiptoe tiptoed|jog jogged"
)
MOTION_VERBS = tuple(tuple(entry.split()) for entry in _MOTION.split("|"))

# Ways of getting to a place: past tense only, each followed by "to".
TRAVEL_VERBS = ("traveled", "drove", "flew", "moved", "returned", "walked", "sailed", "cycled", "went", "hitchhiked")

EVENTS = (
    "concert meeting party festival lecture match race exam wedding parade rehearsal ceremony auction "
    "conference picnic tournament interview performance show game"
).split()

MEALS = ("breakfast", "lunch", "dinner", "supper", "the meeting", "the concert", "sunrise", "sunset", "noon")

UNITS = (
    "miles", "kilometers", "hours", "minutes", "days", "weeks", "pages", "pounds", "meters", "dollars",
    "steps", "laps", "euros", "years",
)

PAST_TIMES = (
    "yesterday", "last night", "this morning", "last week", "last summer", "last winter", "two days ago",
    "a long time ago", "earlier today", "last month", "the other day", "just now",
)
FUTURE_TIMES = (
    "tomorrow", "next week", "tonight", "next summer", "later today", "this afternoon", "next month",
    "in the morning", "after the holidays", "before long", "next spring", "soon",
)

# --------------------------------------------------------------------------------------------------------------
# Numbers as words
# --------------------------------------------------------------------------------------------------------------


def _clock_time(rng: random.Random) -> str:
    hour = number_to_words(rng.randint(1, 12))
    return rng.choice((
        f"{hour} o'clock", f"half past {hour}", f"a quarter past {hour}", f"a quarter to {hour}",
        f"{hour} {number_to_words(rng.choice((10, 15, 20, 25, 30, 40, 45, 50)))}", f"{hour} in the morning",
        f"{hour} in the evening",
    ))


def _count(rng: random.Random) -> str:
    """A plural count: mostly small numbers, sometimes large ones."""
    if rng.random() < 0.7:
        return number_to_words(rng.randint(2, 20))
    return number_to_words(rng.choice((rng.randint(21, 99), rng.randint(100, 999), rng.randint(1000, 9999))))


# --------------------------------------------------------------------------------------------------------------
# Phrases
# --------------------------------------------------------------------------------------------------------------

_AN_EXCEPTIONS = {"useful": "a", "unique": "a", "uniform": "a", "usual": "a", "one": "a", "hour": "an",
                  "honest": "an", "ugly": "an", "umbrella": "an"}


def indefinite_article(word: str) -> str:
    """ "a" or "an" for the word that follows, by its first sound."""
    word = word.lower()
    if word in _AN_EXCEPTIONS:
        return _AN_EXCEPTIONS[word]
    return "an" if word[0] in "aeiou" else "a"


def _person(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(NAMES)
    if roll < 0.75:
        return "the " + rng.choice(OCCUPATIONS)
    return rng.choice(("my", "our", "his", "her", "their", "your")) + " " + rng.choice(RELATIVES)


def _modifiers(rng: random.Random) -> list[str]:
    words = []
    if rng.random() < 0.55:
        words.append(rng.choice(ADJECTIVES))
    if rng.random() < 0.35:
        words.append(rng.choice(COLORS))
    return words


def _thing(rng: random.Random, *, plural: bool = False, determiner: str | None = None) -> str:
    """A noun phrase for a thing: "the heavy green box", "an old lamp", "seven striped scarves"."""
    singular = rng.choice(list(THINGS))
    noun = THINGS[singular] if plural else singular
    words = _modifiers(rng) + [noun]
    if plural:
        return " ".join(words)
    if determiner is None:
        determiner = rng.choice(("the", "the", "a", "my", "his", "her", "our", "their", "this", "that"))
    if determiner == "a":
        determiner = indefinite_article(words[0])
    return determiner + " " + " ".join(words)


def _animal(rng: random.Random) -> str:
    words = _modifiers(rng) + [rng.choice(list(ANIMALS))]
    return " ".join(words)


def _location(rng: random.Random) -> str:
    """A prepositional phrase of place: "near the old mill", "in Lisbon"."""
    if rng.random() < 0.25:
        return "in " + rng.choice(PLACES)
    adjective = rng.choice(ADJECTIVES) + " " if rng.random() < 0.3 else ""
    return f"{rng.choice(LOCATION_PREPOSITIONS)} the {adjective}{rng.choice(LOCATIONS)}"


def _path(rng: random.Random) -> str:
    return f"{rng.choice(PATH_PREPOSITIONS)} the {rng.choice(PATH_PLACES)}"


def _past_time(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(PAST_TIMES)
    if roll < 0.7:
        return "on " + rng.choice(DAYS)
    if roll < 0.85:
        return "in " + rng.choice(MONTHS)
    return rng.choice(("before ", "after ")) + rng.choice(MEALS)


def _future_time(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(FUTURE_TIMES)
    if roll < 0.8:
        return "on " + rng.choice(DAYS)
    return "at " + _clock_time(rng)


def _maybe(rng: random.Random, probability: float, make: Callable[[random.Random], str]) -> str:
    return make(rng) if rng.random() < probability else ""


def _date(rng: random.Random) -> str:
    return f"the {ordinal_to_words(rng.randint(1, 28))} of {rng.choice(MONTHS)}"


def _year(rng: random.Random) -> str:
    return year_to_words(rng.randint(1890, 2009))


# --------------------------------------------------------------------------------------------------------------
# Sentence templates: each returns (words, end mark)
# --------------------------------------------------------------------------------------------------------------


def _statement_action(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return [_person(rng), verb[1], _thing(rng), _maybe(rng, 0.6, _location), _maybe(rng, 0.5, _past_time)], "."


def _statement_count(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return [_person(rng), verb[1], _count(rng), _thing(rng, plural=True), _maybe(rng, 0.5, _location)], "."


def _statement_intransitive(rng):
    verb = rng.choice(INTRANSITIVE_VERBS)
    return [_person(rng), verb[1], _location(rng), _maybe(rng, 0.6, _past_time)], "."


def _statement_motion(rng):
    verb = rng.choice(MOTION_VERBS)
    subject = rng.choice((_person(rng), "the " + _animal(rng)))
    return [subject, verb[1], _path(rng), _maybe(rng, 0.5, _past_time)], "."


def _statement_travel(rng):
    subject = _person(rng) if rng.random() < 0.6 else f"{rng.choice(NAMES)} and {rng.choice(NAMES)}"
    return [subject, rng.choice(TRAVEL_VERBS), "to", rng.choice(PLACES), _maybe(rng, 0.7, _past_time)], "."


def _statement_weather(rng):
    return ["it was", rng.choice(WEATHER), "in", rng.choice(PLACES), "on", _date(rng)], "."


def _statement_schedule(rng):
    event = rng.choice(EVENTS)
    return [_person(rng), "said that the", event, "would start at", _clock_time(rng)], "."


def _statement_there(rng):
    tense = rng.choice(("there are", "there were", "there will be"))
    return [tense, _count(rng), _thing(rng, plural=True), _location(rng)], "."


def _statement_lived(rng):
    return [_person(rng), rng.choice(("has lived", "lived", "worked", "has worked", "studied")), "in",
            rng.choice(PLACES), "for", number_to_words(rng.randint(2, 40)), "years"], "."


def _statement_born(rng):
    return [rng.choice(NAMES), "was born in", rng.choice(PLACES), "in", _year(rng)], "."


def _statement_price(rng):
    unit = rng.choice(("dollars", "euros", "pounds"))
    return [_person(rng), "paid", number_to_words(rng.randint(2, 500)), unit, "for", _thing(rng, determiner="a")], "."


def _statement_distance(rng):
    verb = rng.choice(MOTION_VERBS)
    unit = rng.choice(("miles", "kilometers", "laps", "blocks"))
    return [_person(rng), verb[1], number_to_words(rng.randint(2, 60)), unit, _maybe(rng, 0.6, _past_time)], "."


def _statement_feeling(rng):
    return [_person(rng), rng.choice(("was", "felt", "seemed", "looked")), rng.choice(FEELINGS), "after the",
            rng.choice(EVENTS), _maybe(rng, 0.4, lambda r: "in " + r.choice(PLACES))], "."


def _statement_compound(rng):
    first = f"the {rng.choice(LOCATIONS)} was {rng.choice(STATES)}"
    second = f"the {rng.choice(LOCATIONS)} was {rng.choice(STATES)}"
    return [first + ",", rng.choice(("but", "and", "so")), second, _maybe(rng, 0.5, _past_time)], "."


def _statement_because(rng):
    verb = rng.choice(INTRANSITIVE_VERBS)
    return [_person(rng), verb[1], rng.choice(("at home", "inside", "all day", "for hours")), "because the",
            rng.choice(EVENTS), "was", rng.choice(("cancelled", "postponed", "over", "sold out", "delayed"))], "."


def _statement_animal(rng):
    animal = rng.choice(list(ANIMALS))
    plural = rng.random() < 0.4
    noun = ANIMALS[animal] if plural else animal
    verb = rng.choice(("slept", "waited", "played", "rested", "hid", "sat", "ate quietly", "appeared"))
    return [" ".join(["the"] + _modifiers(rng) + [noun]), verb, _location(rng), _maybe(rng, 0.5, _past_time)], "."


def _statement_plan(rng):
    modal = rng.choice(("we will", "we should", "we must", "I will", "they might", "you could", "she will",
                        "he should", "I would like to"))
    verb = rng.choice(TRANSITIVE_VERBS)
    return [modal, verb[0], _thing(rng), _maybe(rng, 0.6, _future_time)], "."


def _statement_train(rng):
    vehicle = rng.choice(("train", "bus", "ferry", "flight", "boat", "coach"))
    owner = rng.choice(("our", "the", "my", "their", "your"))
    return [owner, vehicle, "to", rng.choice(PLACES), rng.choice(("leaves", "arrives", "departs")), "at",
            _clock_time(rng)], "."


def _question_did(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return ["did", _person(rng), verb[0], _thing(rng), _maybe(rng, 0.6, _location)], "?"


def _question_wh(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    word = rng.choice(("where", "why", "when", "how"))
    return [word, "did", _person(rng), verb[0], _thing(rng), _maybe(rng, 0.4, _past_time)], "?"


def _question_how_many(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return ["how many", _thing(rng, plural=True), "did", _person(rng), verb[0], _maybe(rng, 0.5, _location)], "?"


def _question_who(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return ["who", verb[1], _thing(rng), _maybe(rng, 0.6, _location)], "?"


def _question_is(rng):
    place = rng.choice(LOCATIONS)
    return [rng.choice(("is", "was")), "the", place, _maybe(rng, 0.4, lambda r: "in " + r.choice(PLACES)),
            rng.choice(("still", "already", "usually", "really")), rng.choice(STATES)], "?"


def _question_will(rng):
    verb = rng.choice(INTRANSITIVE_VERBS)
    return ["will", _person(rng), verb[0], "in", rng.choice(PLACES), _future_time(rng)], "?"


def _question_can(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return [rng.choice(("can you", "could you", "would you", "will you")), verb[0], _thing(rng),
            rng.choice(("for", "with")), rng.choice(NAMES), _maybe(rng, 0.4, _future_time)], "?"


def _question_seen(rng):
    animal = _animal(rng)
    return ["have you ever seen", indefinite_article(animal), animal, _location(rng)], "?"


def _question_know(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return ["do you know", rng.choice(("where", "why", "when")), _person(rng), verb[1], _thing(rng)], "?"


def _question_what_time(rng):
    event, place = rng.choice(EVENTS), rng.choice(PLACES)
    return ["what time does the", event, "start in", place, _maybe(rng, 0.5, _future_time)], "?"


def _question_how_far(rng):
    return ["how far is it from", rng.choice(PLACES), "to", rng.choice(PLACES)], "?"


def _exclamation_what(rng):
    thing = " ".join([rng.choice(ADJECTIVES)] + ([rng.choice(COLORS)] if rng.random() < 0.3 else [])
                     + [rng.choice(list(THINGS) + list(ANIMALS))])
    tail = rng.choice(("", "this is", "that was", "you found", "she made", "we saw " + _past_time(rng)))
    return ["what", indefinite_article(thing), thing, tail], "!"


def _exclamation_how(rng):
    subject = rng.choice(("the " + rng.choice(LOCATIONS), "the " + _animal(rng), "your " + rng.choice(list(THINGS))))
    return ["how", rng.choice(ADJECTIVES), subject, rng.choice(("looks", "seems", "is")),
            _maybe(rng, 0.5, lambda r: r.choice(("today", "tonight", "this morning", "in the rain")))], "!"


def _exclamation_look(rng):
    return [rng.choice(NAMES) + ",", rng.choice(("look at", "watch out for", "be careful with", "listen to")),
            "the", _animal(rng), _maybe(rng, 0.5, _location)], "!"


def _exclamation_weather(rng):
    return ["it is", rng.choice(("so", "terribly", "wonderfully", "far too")), rng.choice(WEATHER), "in",
            rng.choice(PLACES), rng.choice(("today", "this week", "again", "tonight"))], "!"


def _request_please(rng):
    verb = rng.choice(TRANSITIVE_VERBS)
    return ["please", verb[0], _thing(rng), rng.choice(("before", "after")), rng.choice(MEALS)], "."


def _request_bring(rng):
    return [rng.choice(("please bring", "don't forget", "remember to bring", "try not to lose")),
            _count(rng), _thing(rng, plural=True), "to the", rng.choice(EVENTS), _maybe(rng, 0.5, _future_time)], "."


TEMPLATES: tuple[tuple[Callable, int], ...] = (
    # (template, relative weight)
    (_statement_action, 6), (_statement_count, 3), (_statement_intransitive, 3), (_statement_motion, 3),
    (_statement_travel, 2), (_statement_weather, 1), (_statement_schedule, 1), (_statement_there, 2),
    (_statement_lived, 1), (_statement_born, 1), (_statement_price, 1), (_statement_distance, 1),
    (_statement_feeling, 1), (_statement_compound, 1), (_statement_because, 1), (_statement_animal, 2),
    (_statement_plan, 2), (_statement_train, 1),
    (_question_did, 2), (_question_wh, 2), (_question_how_many, 1), (_question_who, 1), (_question_is, 1),
    (_question_will, 1), (_question_can, 1), (_question_seen, 1), (_question_know, 1), (_question_what_time, 1),
    (_question_how_far, 1),
    (_exclamation_what, 2), (_exclamation_how, 1), (_exclamation_look, 1), (_exclamation_weather, 1),
    (_request_please, 1), (_request_bring, 1),
)

_WORD = re.compile(r"[A-Za-z']+")


def words_of(sentence: str) -> list[str]:
    """The words of a sentence, lower-cased, punctuation dropped (an apostrophe stays inside a word)."""
    return [word.lower() for word in _WORD.findall(sentence)]


def vocabulary(sentences: Iterable[str]) -> set[str]:
    """Every distinct (lower-cased) word used in ``sentences``."""
    return {word for sentence in sentences for word in words_of(sentence)}


def _assemble(parts: list[str], end: str) -> str:
    text = " ".join(part for part in parts if part)
    text = text[0].upper() + text[1:]
    return text.rstrip(",") + end


def generate_sentences(count: int = 5000, seed: int = 0, *, min_words: int = 4, max_words: int = 16) -> list[str]:
    """``count`` distinct sentences of ``min_words`` to ``max_words`` words, the same list for the same seed.

    Two sentences count as the same when they differ only in case and punctuation, so a held-out text can never
    reappear as a training text with another end mark.

    Raises:
        ValueError: bad bounds, or the grammar cannot give ``count`` distinct sentences within those bounds.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"expected 1 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}")
    rng = random.Random(seed)
    templates = [template for template, _ in TEMPLATES]
    weights = [weight for _, weight in TEMPLATES]
    sentences: list[str] = []
    seen: set[tuple[str, ...]] = set()
    attempts = 0
    max_attempts = 50 * count + 1000
    while len(sentences) < count:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"could only make {len(sentences)} distinct sentences of {min_words}..{max_words} words "
                f"in {max_attempts} attempts (asked for {count}); widen the word range or ask for fewer"
            )
        template = rng.choices(templates, weights)[0]
        sentence = _assemble(*template(rng))
        key = tuple(words_of(sentence))
        if not min_words <= len(key) <= max_words or key in seen:
            continue
        seen.add(key)
        sentences.append(sentence)
    return sentences
