"""Seeded synthetic resident tables of two platforms, for testing and benchmarking linkage.

``generate_linkage`` builds households (a surname, an address, one to four people with birth
dates that fit parents and children) for platform A, then writes platform B's copy of a share of
those people with the noise real registers show: 異体字 swaps (髙橋/高橋, 齋藤/斎藤, 渡邊/渡辺),
kanji and kana typos, ひらがな/カタカナ and 半角/全角 ヨミ, dates in 和暦 or other notation (rarely a
wrong digit), 性別 as 1/2, 男/女 or M/F, address notation (漢数字, 丁目番地号 or hyphens of every
kind, the prefecture or 大字 left out), moves to a new address, marriages (a new surname) and
missing fields. B also holds people A does not. The true pairs come back with the tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jaconv

__all__ = ["COLUMNS", "SyntheticLinkage", "generate_linkage", "write_csv"]

COLUMNS = ("id", "name", "name_kana", "birth_date", "sex", "address")

# surname:reading:variants (異体字 spellings registers hold for the same family name)
_SURNAMES = [tuple(e.split(":")) for e in """
高橋:タカハシ:髙橋 斎藤:サイトウ:齋藤,齊藤,斉藤 渡辺:ワタナベ:渡邊,渡邉 山崎:ヤマザキ:山﨑,山嵜
浜田:ハマダ:濱田,濵田 沢田:サワダ:澤田 広瀬:ヒロセ:廣瀬 島田:シマダ:嶋田 富田:トミタ:冨田
吉田:ヨシダ:𠮷田 桜井:サクライ:櫻井 中島:ナカジマ:中嶋 小島:コジマ:小嶋 藤沢:フジサワ:藤澤
大沢:オオサワ:大澤 黒沢:クロサワ:黒澤 関:セキ:關 柳沢:ヤナギサワ:柳澤 国分:コクブ:國分
真鍋:マナベ:眞鍋 徳永:トクナガ:德永 宮崎:ミヤザキ:宮﨑 長嶋:ナガシマ:長島 佐藤:サトウ: 鈴木:スズキ:
田中:タナカ: 伊藤:イトウ: 山本:ヤマモト: 中村:ナカムラ: 小林:コバヤシ: 加藤:カトウ: 山田:ヤマダ:
佐々木:ササキ: 山口:ヤマグチ: 松本:マツモト: 井上:イノウエ: 木村:キムラ: 林:ハヤシ: 清水:シミズ:
森:モリ: 阿部:アベ: 池田:イケダ: 橋本:ハシモト: 山下:ヤマシタ: 石川:イシカワ: 前田:マエダ:
藤田:フジタ: 小川:オガワ: 後藤:ゴトウ: 岡田:オカダ: 長谷川:ハセガワ: 村上:ムラカミ: 近藤:コンドウ:
石井:イシイ: 坂本:サカモト: 遠藤:エンドウ: 青木:アオキ: 藤井:フジイ: 西村:ニシムラ: 福田:フクダ:
太田:オオタ: 三浦:ミウラ: 藤原:フジワラ: 岡本:オカモト: 松田:マツダ: 中川:ナカガワ: 中野:ナカノ:
原田:ハラダ: 小野:オノ: 田村:タムラ: 竹内:タケウチ: 金子:カネコ: 和田:ワダ: 中山:ナカヤマ:
石田:イシダ: 上田:ウエダ: 森田:モリタ: 原:ハラ: 柴田:シバタ: 酒井:サカイ: 工藤:クドウ:
横山:ヨコヤマ: 宮本:ミヤモト: 内田:ウチダ: 高木:タカギ: 安藤:アンドウ: 谷口:タニグチ: 大野:オオノ:
丸山:マルヤマ: 今井:イマイ: 河野:コウノ: 藤本:フジモト: 村田:ムラタ: 武田:タケダ: 上野:ウエノ:
杉山:スギヤマ: 増田:マスダ: 平野:ヒラノ: 大塚:オオツカ: 千葉:チバ: 久保:クボ: 松井:マツイ:
野口:ノグチ: 菊地:キクチ: 菊池:キクチ: 一ノ瀬:イチノセ:一之瀬 五十嵐:イガラシ: 小松:コマツ:
水野:ミズノ:
""".split()]
_MALE = [tuple(e.split(":")) for e in """
太郎:タロウ 一郎:イチロウ 健太:ケンタ 翔太:ショウタ 大輔:ダイスケ 拓也:タクヤ 直樹:ナオキ 誠:マコト
浩:ヒロシ 博:ヒロシ 隆:タカシ 崇:タカシ 健一:ケンイチ 和也:カズヤ 達也:タツヤ 雄一:ユウイチ
修:オサム 茂:シゲル 清:キヨシ 勇:イサム 正男:マサオ 秀樹:ヒデキ 大樹:ダイキ 蓮:レン 湊:ミナト
陽翔:ハルト 悠真:ユウマ 颯太:ソウタ 大翔:ヒロト 悠斗:ユウト 翼:ツバサ 亮:リョウ 涼太:リョウタ
航:ワタル 聡:サトシ 剛:ツヨシ 進:ススム 稔:ミノル 昭:アキラ 明:アキラ 和夫:カズオ 義雄:ヨシオ
幸之助:コウノスケ 龍之介:リュウノスケ 慎太郎:シンタロウ 光:ヒカル 俊介:シュンスケ 健二:ケンジ
誠一:セイイチ 孝:タカシ 譲:ユズル 勝:マサル 大地:ダイチ 陸:リク 悠人:ユウト 颯:ハヤテ 樹:イツキ
海斗:カイト
""".split()]
_FEMALE = [tuple(e.split(":")) for e in """
花子:ハナコ 陽子:ヨウコ 洋子:ヨウコ 恵子:ケイコ 幸子:サチコ 由美:ユミ 美香:ミカ 愛:アイ
さくら:サクラ 陽菜:ヒナ 結衣:ユイ 美咲:ミサキ 葵:アオイ 凛:リン 芽依:メイ 結愛:ユア 真由美:マユミ
久美子:クミコ 京子:キョウコ 裕子:ユウコ 優子:ユウコ 直美:ナオミ 智子:トモコ 明美:アケミ 千尋:チヒロ
彩:アヤ 舞:マイ 麻衣:マイ 春香:ハルカ 七海:ナナミ 和子:カズコ 節子:セツコ 静香:シズカ 早紀:サキ
沙織:サオリ 香織:カオリ 友美:トモミ 奈々:ナナ ひかり:ヒカリ 美穂:ミホ 理恵:リエ 絵美:エミ 恵美:エミ
佳奈:カナ 彩花:アヤカ 瑞穂:ミズホ 桃子:モモコ 千代:チヨ 文子:フミコ 紗希:サキ 莉子:リコ 美和:ミワ
純子:ジュンコ 順子:ジュンコ 由紀:ユキ 雪:ユキ 晴美:ハルミ 美樹:ミキ 杏:アン
""".split()]

# (prefecture, municipality, towns, 丁目 form?): rural towns use 番地 only
_PLACES = [
    ("兵庫県", "神戸市中央区", "加納町 北長狭通 元町通 下山手通 中山手通 港島中町 磯上通 御幸通", True),
    ("兵庫県", "神戸市東灘区", "住吉本町 岡本 御影町 魚崎北町 本山北町 深江南町", True),
    ("兵庫県", "西宮市", "甲子園町 今津曙町 北口町 高松町 甲東園 苦楽園一番町", True),
    ("兵庫県", "多可郡多可町", "中区岸上 加美区豊部 八千代区中野間 中区天田 加美区観音寺", False),
    ("大阪府", "大阪市北区", "梅田 天神橋 中崎 芝田 茶屋町 曽根崎 豊崎 本庄東", True),
    ("大阪府", "豊中市", "本町 岡町 桜塚 服部元町 庄内東町 緑丘 新千里東町", True),
    ("東京都", "世田谷区", "三軒茶屋 太子堂 北沢 代沢 経堂 桜新町 用賀 自由が丘", True),
    ("東京都", "千代田区", "霞が関 四番町 神田小川町 麹町 富士見", True),
    ("宮城県", "仙台市青葉区", "一番町 国分町 中央 五橋 上杉 木町通", True),
    ("福岡県", "福岡市博多区", "博多駅前 中洲 住吉 祇園町 千代 吉塚", True),
    ("長野県", "北佐久郡軽井沢町", "大字軽井沢 大字長倉 大字追分", False),
]
_DASHES = "-‐−－ーｰ—"
# Look-alike or sound-alike characters that data entry confuses (both directions).
_KANJI_TYPOS = {a: b for pair in "太大 郎朗 一壱 子小 由田 美実 健建 直真 博傅 和知 幸孝 浩洋 恵慧".split()
                for a, b in (pair, pair[::-1])}
_KANA_TYPOS = {a: b for pair in "ョヨ ュユ ャヤ ッツ ズヅ ジヂ オヲ ウー トド タダ".split()
               for a, b in (pair, pair[::-1])}


@dataclass
class SyntheticLinkage:
    """Two platforms' tables (rows keyed by ``COLUMNS``) and the (left id, right id) true pairs."""

    left: list[dict[str, str]]
    right: list[dict[str, str]]
    true_pairs: set[tuple[str, str]]


@dataclass
class _Person:
    surname: tuple[str, ...]
    given: tuple[str, str]
    sex: str
    birth: dt.date
    place: tuple[str, str, str, bool]
    numbers: tuple[int, ...]


def _kansuji(n: int) -> str:
    digits = "〇一二三四五六七八九"
    if n == 0:
        return "〇"
    out = ""
    for unit, mark in ((1000, "千"), (100, "百"), (10, "十")):
        q, n = divmod(n, unit)
        if q:
            out += ("" if q == 1 else digits[q]) + mark
    return out + (digits[n] if n else "")


def _random_place(rng: random.Random) -> tuple[tuple[str, str, str, bool], tuple[int, ...]]:
    pref, muni, towns, chome = rng.choice(_PLACES)
    town = rng.choice(towns.split())
    if chome:
        numbers: tuple[int, ...] = (rng.randint(1, 6), rng.randint(1, 30), rng.randint(1, 25))
    else:
        numbers = (rng.randint(1, 2500),)
    return (pref, muni, town, chome), numbers


def _render_address(rng: random.Random, place: tuple[str, str, str, bool], numbers: tuple[int, ...],
                    noisy: bool) -> str:
    pref, muni, town, _chome = place
    style = rng.randrange(6) if noisy else rng.choice((0, 0, 0, 1))
    num = _kansuji if noisy and rng.random() < 0.3 else str
    if len(numbers) == 3:
        c, b, g = numbers
        if style in (0, 4):
            tail = f"{num(c)}丁目{num(b)}番{num(g)}号"
        elif style == 1:
            tail = f"{c}丁目{b}-{g}"
        elif style == 2:
            tail = f"{num(c)}丁目{num(b)}番地{num(g)}"
        else:
            dash = rng.choice(_DASHES)
            tail = f"{c}{dash}{b}{dash}{g}"
    else:
        tail = f"{num(numbers[0])}番地" if style % 2 == 0 else str(numbers[0])
    text = f"{muni}{town}{tail}"
    if noisy:
        if rng.random() < 0.3:
            text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        if rng.random() < 0.15 and not town.startswith("大字") and len(numbers) == 1:
            text = text.replace(town, "大字" + town, 1)
        if rng.random() < 0.15:
            text = text.replace(town, "　" + town, 1)
    if not noisy or rng.random() > 0.35:
        text = pref + text
    return text


def _new_person(rng: random.Random, surname: tuple[str, ...], place: tuple[str, str, str, bool],
                numbers: tuple[int, ...], birth: dt.date, taken: set[tuple[str, str]]) -> _Person:
    sex = rng.choice("12")
    given = rng.choice(_MALE if sex == "1" else _FEMALE)
    while given in taken:  # one household does not give two members the same name
        given = rng.choice(_MALE if sex == "1" else _FEMALE)
    taken.add(given)
    return _Person(surname, given, sex, birth, place, numbers)


def _households(rng: random.Random, n: int, today: dt.date) -> list[_Person]:
    people: list[_Person] = []
    while len(people) < n:
        surname = rng.choice(_SURNAMES)
        place, numbers = _random_place(rng)
        parent = today - dt.timedelta(days=rng.randint(20 * 365, 90 * 365))
        size = rng.choices((1, 2, 3, 4), weights=(35, 30, 20, 15))[0]
        taken: set[tuple[str, str]] = set()
        for k in range(size):
            if k == 0:
                birth = parent
            elif k == 1:
                birth = parent + dt.timedelta(days=rng.randint(-5 * 365, 5 * 365))
            else:
                birth = parent + dt.timedelta(days=rng.randint(22 * 365, 40 * 365))
                if rng.random() < 0.03 and len(people) and k == 3:
                    birth = people[-1].birth  # twins: same surname, address and birth date
            if birth > today:
                birth = today - dt.timedelta(days=rng.randint(0, 15 * 365))
            people.append(_new_person(rng, surname, place, numbers, birth, taken))
    return people[:n]


def _typo(rng: random.Random, text: str, table: dict[str, str]) -> str:
    spots = [i for i, ch in enumerate(text) if ch in table]
    if spots and rng.random() < 0.7:
        i = rng.choice(spots)
        return text[:i] + table[text[i]] + text[i + 1:]
    i = rng.randrange(len(text))
    return text[:i] + text[i + 1:] if len(text) > 2 else text + text[-1]


def _render_left(p: _Person, rng: random.Random, pid: str) -> dict[str, str]:
    kana = f"{p.surname[1]} {p.given[1]}" if rng.random() > 0.05 else ""
    return {"id": pid, "name": f"{p.surname[0]}　{p.given[0]}", "name_kana": kana,
            "birth_date": p.birth.isoformat(), "sex": p.sex,
            "address": _render_address(rng, p.place, p.numbers, noisy=False)}


def _render_right(p: _Person, rng: random.Random, pid: str) -> dict[str, str]:
    variants = [v for v in p.surname[2].split(",") if v] if len(p.surname) > 2 else []
    surname = rng.choice(variants) if variants and rng.random() < 0.4 else p.surname[0]
    given = p.given[0]
    if rng.random() < 0.04:
        given = _typo(rng, given, _KANJI_TYPOS)
    name = surname + rng.choice(("", " ", "　")) + given
    kana = p.surname[1] + rng.choice(("", " ", "　")) + p.given[1]
    if rng.random() < 0.04:
        kana = _typo(rng, kana, _KANA_TYPOS)
    r = rng.random()
    kana = jaconv.kata2hira(kana) if r < 0.3 else jaconv.z2h(kana, kana=True) if r < 0.5 else kana
    birth = p.birth
    if rng.random() < 0.02:
        birth = _typo_date(rng, birth)
    y, m, d = birth.year, birth.month, birth.day
    era = next((e for e, start in (("令和", 2019), ("平成", 1989), ("昭和", 1926), ("大正", 1912))
                if birth >= dt.date(start, 5 if e == "令和" else 1, 8 if e == "平成" else 1)), None)
    formats = [f"{y}/{m}/{d}", f"{y}年{m}月{d}日", f"{y}{m:02}{d:02}", birth.isoformat()]
    if era:
        start = {"令和": 2019, "平成": 1989, "昭和": 1926, "大正": 1912}[era]
        formats.append(f"{era}{y - start + 1}年{m}月{d}日")
    sex = {"1": rng.choice(("1", "男", "M", "男性")), "2": rng.choice(("2", "女", "F", "女性"))}[p.sex]
    row = {"id": pid, "name": name, "name_kana": kana, "birth_date": rng.choice(formats), "sex": sex,
           "address": _render_address(rng, p.place, p.numbers, noisy=True)}
    for column, rate in (("name_kana", 0.08), ("birth_date", 0.02), ("sex", 0.03), ("address", 0.03)):
        if rng.random() < rate:
            row[column] = ""
    return row


def _typo_date(rng: random.Random, birth: dt.date) -> dt.date:
    for _ in range(10):
        kind = rng.randrange(3)
        try:
            if kind == 0:
                day = birth.replace(day=int(f"{birth.day:02}"[::-1]))
            elif kind == 1:
                day = birth.replace(month=birth.day, day=birth.month)
            else:
                day = birth.replace(year=birth.year + rng.choice((-1, 1, -10, 10)))
        except ValueError:
            continue
        if day != birth and day <= dt.date.today():
            return day
    return birth + dt.timedelta(days=1)


def generate_linkage(n_left: int, n_right: int | None = None, *, overlap: float = 0.7,
                     move_rate: float = 0.08, marriage_rate: float = 0.02, seed: int = 0) -> SyntheticLinkage:
    """Platform A with ``n_left`` people, platform B with ``n_right`` (default the same), of whom
    ``overlap × min(n_left, n_right)`` are A's people seen through B's noise; the rest are new."""
    rng = random.Random(seed)
    n_right = n_left if n_right is None else n_right
    today = dt.date(2026, 4, 1)
    left_people = _households(rng, n_left, today)
    shared = rng.sample(range(n_left), int(overlap * min(n_left, n_right)))
    right_people: list[tuple[int | None, _Person]] = []
    for i in shared:
        p = left_people[i]
        if rng.random() < move_rate:
            place, numbers = _random_place(rng)
            p = _Person(p.surname, p.given, p.sex, p.birth, place, numbers)
        if p.sex == "2" and rng.random() < marriage_rate:
            p = _Person(rng.choice(_SURNAMES), p.given, p.sex, p.birth, p.place, p.numbers)
        right_people.append((i, p))
    right_people += [(None, p) for p in _households(rng, n_right - len(shared), today)]
    rng.shuffle(right_people)
    left = [_render_left(p, rng, f"A{i:07d}") for i, p in enumerate(left_people)]
    right, pairs = [], set()
    for j, (i, p) in enumerate(right_people):
        right.append(_render_right(p, rng, f"B{j:07d}"))
        if i is not None:
            pairs.add((left[i]["id"], right[-1]["id"]))
    return SyntheticLinkage(left, right, pairs)


def write_csv(rows: Iterable[dict[str, str]], path: str | Path, *, bom: bool = False) -> None:
    """Write rows with the ``COLUMNS`` header (UTF-8, with a BOM when ``bom``)."""
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
