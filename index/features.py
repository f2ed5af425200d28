"""What makes two concerns "the same issue": places, facilities, organisations, numbers, keywords.

Sentence embeddings say two texts talk about similar things; they do not say it is the same
estate or the same mixing plant. This module extracts the concrete anchors from a text
(`profile()`) and turns a pair of profiles into a small numeric feature vector (`pair_features()`)
that `index.dedup` feeds to a calibrated logistic model.

jieba's user dictionary is process-global: it is loaded once, from `nlu_data/jieba/` if present.

Cost: reading one concern's anchors takes ~1-2 ms, almost all of it jieba. `index.profiles.ProfileStore`
keeps them per stored submission (`pack_anchors`, without the bigram set, which is most of a
Profile's memory and is recomputed from the text in ~0.07 ms), so a re-check segments only the new
concern.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import operator
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jieba
import jieba.analyse

from bot.config import REPO_ROOT
from bot.text import normalize as text_normalize
from bot.text import places as place_reader
from bot.text.places import PlaceParts, longest_place_parts, place_conflict, place_names, same_place
from bot.topics.concepts import split_headline

USER_DICT_DIR = REPO_ROOT / "nlu_data" / "jieba"

# Masked or real administrative units: coarse, shared by many unrelated reports. No bare "区"
# for real names: 小区/社区/园区 are places, not districts.
# Administrative units, coarse and shared by many unrelated reports. Only the masked form of
# published government data (A市, A3区, K8县) is recognised: real names are too easily confused
# with ordinary words ending in 市/县 ("影响市容"); residents' own `place` is compared as a place.
DISTRICT_RE = re.compile(r"[A-Z]\d{0,2}\s?[省市区县]")
ORG_SUFFIX_RE = re.compile(r"(?:公司|集团|物业|开发商|局|委员会|中心|派出所|银行|酒店|工厂|厂)$")

FACILITIES = (
    "电梯", "路灯", "搅拌站", "搅拌厂", "垃圾站", "垃圾", "噪音", "噪声", "扰民", "油烟", "污水", "排污", "臭味",
    "异味", "粉尘", "扬尘", "停车", "车位", "充电桩", "红绿灯", "信号灯", "公交", "地铁", "高速", "收费站",
    "学位", "入学", "学校", "幼儿园", "医院", "诊所", "医保", "社保", "养老", "公积金", "户口", "拆迁", "征地",
    "补偿", "安置", "房产证", "不动产证", "产权证", "物业", "维修基金", "燃气", "天然气", "供暖", "供水",
    "停水", "停电", "水压", "自来水", "网络", "信号", "基站", "围墙", "绿化", "违建", "违章", "占道", "摊贩",
    "工地", "施工", "渣土", "广场舞", "化工", "养殖", "采砂", "砂石", "工资", "欠薪", "拖欠", "房租", "车库",
    "消防", "下水道", "井盖", "道路", "积水", "桥梁", "健身", "农贸市场", "厕所", "排水", "污染", "空气",
)
# Residents say when they report something again.
REPEAT_RE = re.compile(r"再次|又一次|第[二三四五2-5]次|多次反映|多次投诉|也谈|仍未|仍然没有|还是没有|至今没有|一直没有")
NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
YEAR_RE = re.compile(r"(?:19|20)\d{2}")
# Generic words that say nothing about which issue it is.
STOP_KEYWORDS = {
    "问题", "希望", "领导", "政府", "相关", "部门", "反映", "情况", "居民", "小区", "社区", "我们", "你们",
    "没有", "现在", "已经", "一直", "请问", "解决", "处理", "市民", "群众", "老百姓", "谢谢", "尽快", "要求",
    "严重", "影响", "生活", "工作", "时间", "能否", "是否", "什么", "如何", "怎么", "关于", "A市", "A区",
}

_jieba_lock = threading.Lock()
_jieba_ready = False


def ensure_jieba(user_dict_dir: Path | None = None) -> None:
    """Load jieba once, quietly, with every *.txt in the user dictionary directory."""
    global _jieba_ready
    if _jieba_ready:
        return
    with _jieba_lock:
        if _jieba_ready:
            return
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        directory = user_dict_dir or USER_DICT_DIR
        if directory.is_dir():
            for path in sorted(directory.glob("*.txt")):
                jieba.load_userdict(str(path))
        _jieba_ready = True


def _named(tokens: list[str], suffix_re: re.Pattern[str]) -> set[str]:
    """Names ending in a suffix token, with up to two name tokens read leftwards."""
    found: set[str] = set()
    for i, tok in enumerate(tokens):
        if not suffix_re.search(tok) or tok in FACILITIES:
            continue
        name, j = tok, i - 1
        while j >= 0 and j >= i - 2 and len(name) < 6:
            prev = tokens[j]
            if any(ch in place_reader.NAME_BREAK for ch in prev) or prev in STOP_KEYWORDS or prev in FACILITIES:
                break
            name = prev + name
            j -= 1
        stem = suffix_re.sub("", name)
        if len(stem) >= 2 or stem.isdigit():
            found.add(name)
    return found


def extract_places(text: str) -> tuple[set[str], set[str]]:
    """(specific places such as 东澜湾社区 / 12号楼, districts such as A3区)."""
    ensure_jieba()
    text = half_width(text)
    districts = {m.group(0).replace(" ", "") for m in DISTRICT_RE.finditer(text)}
    masked = DISTRICT_RE.sub(lambda m: "，" * len(m.group(0)), text)
    return place_names(masked, {start for _, start, _ in jieba.tokenize(masked)}, FACILITIES), districts


@dataclass
class Profile:
    """The anchors of one concern."""

    places: set[str] = field(default_factory=set)
    districts: set[str] = field(default_factory=set)
    facilities: set[str] = field(default_factory=set)
    orgs: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    keywords: dict[str, float] = field(default_factory=dict)
    bigrams: frozenset[str] = field(default_factory=frozenset)
    repeat: bool = False
    # Bigrams of the first sentence (a title, or the resident's opening line that names the matter).
    head: frozenset[str] = field(default_factory=frozenset)
    # The place as a whole, in parts (the resident's own place when given, else the text's), for the
    # place-conflict rule at the finest level both concerns name.
    parts: PlaceParts = field(default_factory=PlaceParts)


# The anchors of a concern are near its start (title, first sentences); reading further costs time.
MAX_CHARS = 400


def _keywords(tokens: list[str], top: int = 15) -> dict[str, float]:
    """TF-IDF over jieba's own IDF table (what jieba.analyse.extract_tags does, without a 2nd cut)."""
    tfidf = jieba.analyse.default_tfidf
    counts: dict[str, int] = {}
    for tok in tokens:
        tok = tok.strip()
        if len(tok) < 2 or tok.lower() in tfidf.stop_words or tok in STOP_KEYWORDS or tok.isdigit():
            continue
        counts[tok] = counts.get(tok, 0) + 1
    total = sum(counts.values()) or 1
    scores = {w: c / total * tfidf.idf_freq.get(w, tfidf.median_idf) for w, c in counts.items()}
    return dict(sorted(scores.items(), key=lambda kv: -kv[1])[:top])


# Full-width digits and Latin letters (１２号楼, Ａ５区) read like half-width ones (12号楼, A5区):
# otherwise the same building number is a number mismatch and a place conflict. Only these are
# mapped (NFKC of every text costs ~40 µs per candidate and changes nothing else the anchors read).
FULLWIDTH_ALNUM_RE = re.compile("[０-９Ａ-Ｚａ-ｚ]")
FULLWIDTH_TO_ASCII = {c: c - 0xFEE0 for r in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
                      for c in range(r[0], r[1] + 1)}


def half_width(text: str) -> str:
    return text.translate(FULLWIDTH_TO_ASCII) if FULLWIDTH_ALNUM_RE.search(text) else text


def anchor_text(text: str | None, place: str | None = None) -> str:
    """What anchors are read from: the resident's place and the head of the text, with full-width
    digits and letters made half-width."""
    return half_width(f"{place or ''} {(text or '')[:MAX_CHARS]}".strip())


NOT_WORD_RE = re.compile(r"[^\u4e00-\u9fa5A-Za-z0-9]")


def bigrams_of(full: str) -> frozenset[str]:
    """Character bigrams of the Chinese characters, letters and digits of `anchor_text(...)`."""
    compact = NOT_WORD_RE.sub("", full)
    return frozenset(map(operator.add, compact, compact[1:]))


# A headline is a summary only when the text goes on after it: a one-sentence concern's "headline" is
# the whole text, already compared by bigram_jaccard, and the overlap coefficient of two short,
# similarly worded sentences ("幸福小区电梯坏了" / "幸福小区路灯坏了") is high whatever they mean
# (measured on STS-B: product-decision precision 0.69 -> 0.61 when one-sentence texts had headlines).
MIN_FOLLOWING_CHARS = 8
MAX_HEADLINE_CHARS = 60


def head_bigrams(full: str) -> frozenset[str]:
    """Bigrams of the headline of `anchor_text(...)` (the resident's place, if given, leads it), or none
    when the text is a single sentence or its first sentence is too long to be a title."""
    first, following = split_headline(full)
    if not first or len(first) > MAX_HEADLINE_CHARS or len(NOT_WORD_RE.sub("", following)) < MIN_FOLLOWING_CHARS:
        return frozenset()
    return bigrams_of(first)


def whole_place(full: str, boundaries: set[int] | None = None) -> PlaceParts:
    """The parts of the longest place in `anchor_text(...)` (the resident's own place leads it), its
    first name starting at a word boundary (jieba's) so lead-in verbs are not part of it."""
    return longest_place_parts(full, boundaries)


def anchors_of(full: str) -> Profile:
    """All anchors of `anchor_text(...)`; jieba's segmentation is most of the cost (~1-2 ms)."""
    ensure_jieba()
    masked = DISTRICT_RE.sub(lambda m: "，" * len(m.group(0)), full)
    spans = list(jieba.tokenize(masked))
    tokens = [tok for tok, _, _ in spans]
    return Profile(
        places=place_names(masked, {start for _, start, _ in spans}, FACILITIES),
        districts={m.group(0).replace(" ", "") for m in DISTRICT_RE.finditer(full)},
        facilities={f for f in FACILITIES if f in full},
        orgs=_named(tokens, ORG_SUFFIX_RE),
        numbers={n for n in NUMBER_RE.findall(DISTRICT_RE.sub(" ", full)) if not YEAR_RE.fullmatch(n)},
        keywords=_keywords(tokens),
        bigrams=bigrams_of(full),
        repeat=bool(REPEAT_RE.search(full)),
        head=head_bigrams(full),
        parts=whole_place(full, {start for _, start, _ in spans}),
    )


def pack_anchors(p: Profile) -> bytes:
    """Compact bytes for `ProfileStore`: every anchor but the bigrams (~560 bytes, where a Profile
    object takes ~28 KB, mostly its bigram set). JSON keeps the keyword order and round-trips the
    float scores exactly."""
    return json.dumps([sorted(p.places), sorted(p.districts), sorted(p.facilities), sorted(p.orgs),
                       sorted(p.numbers), list(p.keywords.items()), p.repeat, p.parts.as_dict()],
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def unpack_anchors(blob: bytes, full: str) -> Profile:
    """The Profile of `full` from `pack_anchors(...)`; the bigrams are recomputed (~0.07 ms)."""
    places, districts, facilities, orgs, numbers, keywords, repeat, parts = json.loads(blob)
    return Profile(places=set(places), districts=set(districts), facilities=set(facilities), orgs=set(orgs),
                   numbers=set(numbers), keywords={str(w): float(v) for w, v in keywords},
                   bigrams=bigrams_of(full), repeat=bool(repeat), head=head_bigrams(full),
                   parts=PlaceParts(**parts))


def anchors_fingerprint() -> str:
    """Changes whenever extraction may change (this module's code, the shared place reader's or the
    jieba user dictionary): persisted anchors carry it and are recomputed when it differs."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for module in (place_reader, text_normalize):
        digest.update(Path(str(module.__file__)).read_bytes())
    if USER_DICT_DIR.is_dir():
        for path in sorted(USER_DICT_DIR.glob("*.txt")):
            digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# Small: the service reads stored concerns' anchors from `ProfileStore`; this cache serves
# calibration and evaluation, which look at the same texts many times. (It held 50000 entries
# before, up to ~1.4 GB at ~28 KB per Profile.)
@lru_cache(maxsize=4096)
def profile(text: str, place: str | None = None) -> Profile:
    """Extract anchors from a concern (and the place the resident gave, if any). Cached: texts repeat."""
    return anchors_of(anchor_text(text, place))


def _jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    shared = len(a & b)  # |a | b| from the sizes: building the union costs as much as the intersection
    return shared / (len(a) + len(b) - shared)


def _fuzzy_overlap(a: set[str], b: set[str]) -> bool:
    return any(same_place(x, y) for x in a for y in b)


def place_cap(a: Profile, b: Profile) -> str | None:
    """Why two concerns may not be merged without the resident's word, whatever their score, or None.

    Same issue means the same problem at the same place, at the finest level both name: 3号楼 vs 5号楼,
    or two intersections on one road, conflict ("place:building", "place:roads"); on the same road with
    nothing finer in common, a different facility is another concern ("problem") — a broken traffic
    light at one crossing is not a missing manhole cover further along.
    """
    level = place_conflict(a.parts, b.parts)
    if level:
        return f"place:{level}"
    shared_road = any(same_place(x, y) for x in a.parts.roads for y in b.parts.roads)
    finer = any(getattr(a.parts, k) and getattr(b.parts, k) for k in ("community", "landmark", "building"))
    if shared_road and not finer and a.facilities and b.facilities and not a.facilities & b.facilities:
        return "problem"
    return None


def has_headlines(a: Profile, b: Profile) -> bool:
    """Both concerns open with a headline apart from their text (a title or a first sentence)."""
    return bool(a.head and b.head)


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap coefficient: a short headline inside a longer one still counts in full."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _weighted_overlap(a: dict[str, float], b: dict[str, float]) -> float:
    if not a or not b:
        return 0.0
    shared = sum(min(a[w], b[w]) for w in a.keys() & b.keys())
    total = sum(max(a.get(w, 0.0), b.get(w, 0.0)) for w in a.keys() | b.keys())
    return shared / total if total else 0.0


FEATURE_NAMES = (
    "cosine",          # embedding similarity, rescaled around e5's compressed range
    "place_match",     # a specific place in common
    "place_conflict",  # both name specific places, none in common
    "district_match",
    "district_conflict",
    "facility_jaccard",
    "org_match",
    "number_match",
    "keyword_overlap",
    "bigram_jaccard",
    "log_gap_days",
    "repeat_marker",   # the new text says it is reporting again
    "headline_overlap",  # the first sentences (titles) share their wording: bigram overlap coefficient
)


def pair_features(a: Profile, b: Profile, cosine: float, gap_days: float | None = None) -> list[float]:
    """The feature vector for one candidate pair, in FEATURE_NAMES order."""
    place_match = bool(a.places and b.places and _fuzzy_overlap(a.places, b.places))
    district_match = bool(a.districts & b.districts)
    return [
        (cosine - 0.9) * 10.0,
        float(place_match),
        float(bool(a.places and b.places) and not place_match),
        float(district_match),
        float(bool(a.districts and b.districts) and not district_match),
        _jaccard(a.facilities, b.facilities),
        float(bool(a.orgs & b.orgs)),
        float(bool(a.numbers & b.numbers)),
        _weighted_overlap(a.keywords, b.keywords),
        _jaccard(a.bigrams, b.bigrams),
        math.log1p(abs(gap_days)) if gap_days is not None else 0.0,
        float(a.repeat),
        _overlap(a.head, b.head),
    ]


def shared_anchors(a: Profile, b: Profile) -> list[str]:
    """Human-readable reasons: what the two concerns have in common."""
    reasons = []
    places = sorted({x for x in a.places for y in b.places if same_place(x, y)}, key=len, reverse=True)
    if places:
        reasons.append("地点:" + "、".join(places[:3]))
    if a.facilities & b.facilities:
        reasons.append("设施/事项:" + "、".join(sorted(a.facilities & b.facilities)[:3]))
    if a.orgs & b.orgs:
        reasons.append("单位:" + "、".join(sorted(a.orgs & b.orgs)[:2]))
    words = sorted(a.keywords.keys() & b.keywords.keys(), key=lambda w: -a.keywords[w])
    if words:
        reasons.append("关键词:" + "、".join(words[:4]))
    return reasons
