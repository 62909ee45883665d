"""Build the labelled reply corpus: ``python unsubscribe/intent/data/build_corpus.py``.

Writes ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` next to this file, one JSON object a line:
``{"text", "label", "family", "context"}``. Deterministic (fixed seed): running it again gives the same
files byte for byte. How it works, and the label rules it follows, are in README.md next to it.

A *family* is one paraphrase group: a set of core phrasings that say the same thing the same way
("别再发了 / 别发了 / 不要再发了"). Each row is a core phrasing, wrapped in greetings or polite words of its
language, then perturbed (case, full-width, spacing, punctuation, emoji, typos, traditional script).
The split is by family, so the test set holds paraphrase groups the model never saw in training.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import opencc

SEED = 20261201
N_FACTOR = 1.7  # rows per family = Family.n * N_FACTOR (fewer where the combinations run out)
HERE = Path(__file__).resolve().parent
U, R, H, S, O = "unsubscribe", "resubscribe", "help", "status", "other"

_s2t = opencc.OpenCC("s2t")
_s2hk = opencc.OpenCC("s2hk")
_s2tw = opencc.OpenCC("s2tw")


@dataclass
class Family:
    id: str
    label: str
    lang: str  # "zh", "yue" (Cantonese), "en", "xx" (other languages), "raw" (no wrapper, no perturbation)
    phrases: list[str]
    n: int = 40
    context: str = ""
    wrap: bool = True  # greetings and polite words around the phrase
    perturb: bool = True
    hand: bool = False  # hand-written rows: every phrase once, no wrapper, no perturbation
    extra: dict[str, list[str]] = field(default_factory=dict)


# --- slot values shared by all families ----------------------------------------------------------

SLOTS: dict[str, list[str]] = {
    "brand": [
        "京东", "淘宝", "美团", "拼多多", "中国移动", "联通", "电信", "招商银行", "平安", "携程", "唯品会",
        "苏宁", "屈臣氏", "麦当劳", "肯德基", "星巴克", "滴滴", "饿了么", "小米商城", "蓝钻",
    ],
    "brand_en": [
        "Acme", "ShopNow", "FreshMart", "Lanzuan", "BestDeals", "CityGym", "PizzaHub", "QuickLoans",
        "StyleBox", "TechZone", "Verizon", "Macy's", "Domino's",
    ],
    "num": ["1234", "88", "5678", "20", "3", "9921", "10086", "4471", "2", "15"],
    "order": ["#10234", "#88211", "A5521", "2023110588", "No. 7731", "JD98213", "#4410"],
    "day": ["明天", "今天", "周五", "下周一", "后天", "这周末", "12月3号"],
    "day_en": ["tomorrow", "today", "Friday", "next Monday", "this weekend", "on the 3rd"],
    "hotel": ["酒店", "民宿", "机票", "火车票", "演唱会门票", "电影票", "房间", "课程", "场地", "体检套餐"],
    "goods": ["衣服", "鞋子", "耳机", "手机壳", "快递", "包裹", "货", "那件外套", "口罩", "洗发水"],
    "name": ["张先生", "李女士", "王总", "小刘", "陈经理", "Mike", "Anna", "老王"],
    "name_en": ["Mike", "Sarah", "John", "Anna", "David", "Lisa", "Tom"],
    "code6": ["384920", "102934", "558201", "730012", "661234", "904417", "215588"],
    "url": ["https://t.cn/A6x9", "http://dwz.cn/8Kp2", "https://u.jd.com/x1Q", "https://bit.ly/3xYz", "s.tb.cn/9Lm"],
}  # fmt: skip

# Marketing texts a person pastes back (with a code of their own, or a question).
MARKETING_ZH = [
    "【{brand}】双11狂欢购，全场低至5折，满300减50，点击{url}立即抢购！拒收请回复R",
    "【{brand}】尊敬的会员，您的积分即将过期，快来兑换好礼{url} 回T退订",
    "【{brand}】年终大促最后3天！爆款直降，戳{url}，退订回TD",
    "【{brand}】新品上市，会员专享8折优惠券已到账，有效期7天，详情{url} 回复N退订",
    "【{brand}】您有一张20元无门槛券待领取，点击{url}领取，回T退订",
    "【{brand}】感恩回馈，充100送50，活动截止本周日，回复TD退订",
]
MARKETING_EN = [
    "{brand_en}: FLASH SALE! 50% off everything today only. Shop now {url} Reply STOP to opt out",
    "{brand_en}: Your exclusive 20% coupon expires tonight! Use code SAVE20 at {url}. Txt STOP to end",
    "{brand_en} Rewards: you have 500 points waiting. Redeem at {url} Msg&data rates may apply. Reply HELP for help, STOP to cancel",
    "{brand_en}: New arrivals are here! Free shipping over $50 {url} Reply STOP to unsubscribe",
]

POLITE_PRE = {
    "zh": ["", "", "", "你好，", "您好，", "你好", "请", "麻烦", "麻烦你们", "喂，", "客服，", "那个，", "亲，",
           "{brand}，", "拜托，", "求求你们", "我说，"],
    "yue": ["", "", "你好，", "唔該，", "喂，", "咁", "喂喂，", "拜托，"],
    "en": ["", "", "", "Hi, ", "Hello, ", "hi ", "Please ", "pls ", "Hey ", "{brand_en}: ", "Sorry but ",
           "Excuse me, ", "Hi there. ", "Dear sir, ", "ok "],
    "xx": ["", "", "", ""],
}  # fmt: skip
POLITE_POST = {
    "zh": ["", "", "", "，谢谢", "谢谢", "。", "！", "!!", "，拜托了", "啊", "吧", "，谢谢配合", "哈", "！！！", "。谢谢！",
           "，感谢", "~", "...", "，辛苦了"],
    "yue": ["", "", "，唔該", "啦", "呀", "喇", "，多謝", "！", "。", "吖"],
    "en": ["", "", "", ".", "!", " thanks", " thank you", " please", " pls", " asap", ", thx", "!!!", " :)",
           ". Thanks!", " ty", " now", "..."],
    "xx": ["", "", ".", "!", " "],
}  # fmt: skip
EMOJI_NEUTRAL = ["😊", "🙏", "👋", "😅", "🙂", "😐", "🤔"]
EMOJI_ANGRY = ["😡", "😤", "🤬", "😠", "👎", "💢", "🙄"]

# Opt-out codes in the forms people type them.
TD_FORMS = ["TD", "td", "Td", "tD", "T D", "t d", "T.D", "T.D.", "t.d.", "ＴＤ", "Ｔ Ｄ", "ｔｄ", "【TD】", "[TD]",
            "(TD)", "TD TD", "TDTD", "“TD”", "T-D", "T_D", "TD!", "TD。", "ＴＤ！"]  # fmt: skip
STOP_FORMS = ["STOP", "stop", "Stop", "S.T.O.P", "S.T.O.P.", "s t o p", "S T O P", "ＳＴＯＰ", "ｓｔｏｐ", "STOP!!!",
              "sToP", "STOP STOP", "stop stop stop", "[STOP]", "STOP.", "S-T-O-P", "Stop!"]  # fmt: skip
TUIDING_FORMS = ["退订", "退訂", "【退订】", "退 订", "退。订", "退订退订", "退订！", "退订。", "『退訂』", "退订!!"]


# --- the families ----------------------------------------------------------------------------------

F = Family
FAMILIES: list[Family] = [
    # ===== unsubscribe: the codes =====
    F("u_code_td", U, "zh", TD_FORMS, 60),
    F("u_code_td_en", U, "en", TD_FORMS, 30),
    F("u_code_tuiding", U, "zh", TUIDING_FORMS, 50),
    F("u_code_stop", U, "en", STOP_FORMS, 60),
    F("u_code_stop_zh", U, "zh", STOP_FORMS, 25),
    F("u_code_letters", U, "raw", ["T", "t", "N", "n", "R", "r", "Ｔ", "Ｎ", "Ｒ", "T.", "N!", "R。", " T ", "t!"], 20),
    F("u_code_words", U, "en", ["UNSUBSCRIBE", "unsubscribe", "Unsubscribe", "UNSUB", "unsub", "CANCEL", "cancel",
        "END", "end", "QUIT", "quit", "REVOKE", "OPTOUT", "OPT-OUT", "opt out", "Opt Out", "REMOVE", "remove",
        "STOPALL", "STOP ALL", "stopall", "U N S U B", "C A N C E L", "Q.U.I.T"], 70),
    F("u_code_quxiao", U, "zh", ["取消", "取消。", "取消！", "取 消", "取消取消", "取消吧", "我要取消", "取消掉", "取消了"], 25),
    F("u_code_typo", U, "en", ["stpo", "sotp", "stoo", "srop", "stlp", "stopp", "stopo", "sstop", "stop[", "unsubscibe",
        "unsubcribe", "unsubscrib", "unsuscribe", "usubscribe", "unsbscribe", "cancle", "cancell", "calcel", "remvoe",
        "remov", "optuot", "opt otu", "quti", "revoek", "stpp", "unsubsribe", "unscribe", "unsbuscribe", "stoppp"], 60),
    F("u_code_typo_zh", U, "zh", ["tuiding", "TUIDING", "tui ding", "Tuiding", "tuid", "腿订", "退定", "推订", "退丁",
        "退顶", "褪订", "退钉", "蜕订", "tuì dìng", "退ding", "tui订", "tuiding谢谢", "td退定", "退订td", "退dinG"], 60),
    F("u_code_td_typo", U, "raw", ["TF", "TS", "RD", "YD", "TX", "tf", "ts", "TDD", "TTD", "TDT", "DT", "Tdd"], 12),
    F("u_code_polite_zh", U, "zh", ["{td}谢谢", "{td}，谢谢", "回复{td}", "{td} 谢谢配合", "我回{td}", "{td}啊", "就{td}吧",
        "{td}{td}", "谢谢，{td}", "麻烦{td}", "{tuiding}，谢谢", "请{tuiding}", "我要{tuiding}", "我{tuiding}"], 60),
    F("u_code_polite_en", U, "en", ["{stop} please", "please {stop}", "{stop} thanks", "{stop} thank you", "{stop} now",
        "{stop}, thank you", "{stop} pls", "Ok {stop}", "{stop} lol", "{stop}!!!!!", "just {stop}", "{stop} {stop}"], 50),
    F("u_code_mixed", U, "zh", ["{stop}，谢谢", "{stop}吧", "请{stop}", "Hi，{td}", "{td} please", "{tuiding} thanks",
        "{td} thx", "退订 STOP", "TD STOP", "stop退订", "TD 😡", "{stop} 🙏"], 40),
    F("u_code_emoji", U, "raw", ["🛑", "🛑🛑", "⛔", "🚫", "🔕", "⛔️", "🛑🛑🛑", "🔕🔕", "🚫🚫", "🛑 🙏", "📵", "🙅‍♀️🛑"], 12),
    # ===== unsubscribe: plain requests, Chinese =====
    F("u_zh_biefa", U, "zh", ["别再发了", "别发了", "不要再发了", "别再给我发了", "不要再给我发了", "以后别发了", "以后不要再发了",
        "别再发短信了", "不要再发短信给我", "别给我发了", "别发啦", "不要发了", "甭发了", "别再发这种短信了", "莫发了"], 60),
    F("u_zh_buxiang", U, "zh", ["不想再收到你们的短信", "我不想收到这些短信", "不想收到", "不想再收了", "我不想再收到了",
        "我不要收到这种信息", "不想接收你们的消息", "以后不想再收到", "我不想再看到你们的短信", "不想收你们短信了"], 50),
    F("u_zh_jushou", U, "zh", ["拒收", "拒收短信", "拒绝接收", "拒收广告", "我拒收", "拒绝接收营销短信", "拒收所有短信",
        "本人拒收", "拒收此类信息", "拒绝"], 40),
    F("u_zh_tingzhi", U, "zh", ["停止发送", "停止推送", "停止发送短信", "停发", "停止给我发信息", "请停止", "停止营销短信",
        "立即停止发送", "停掉吧", "停了吧", "停止一切推送"], 45),
    F("u_zh_quxiaodingyue", U, "zh", ["取消订阅", "取消短信订阅", "取消所有订阅", "取消推送", "取消短信通知", "取消营销短信",
        "帮我取消订阅", "订阅取消", "取消订阅谢谢", "取消关注", "关闭短信推送", "关闭营销短信", "关掉推送"], 50),
    F("u_zh_shanchu", U, "zh", ["把我移出名单", "从名单里删掉我", "删除我的号码", "把我号码删了", "把我从你们的名单里删除",
        "删掉我的手机号", "请把我的号码从发送列表移除", "移除我的号码", "把我拉出群发名单", "别把我放在名单里了"], 45),
    F("u_zh_darao", U, "zh", ["请勿打扰", "勿扰", "别打扰我", "别骚扰我", "不要骚扰我了", "别烦我了", "不要再打扰我",
        "能不能别打扰我", "别来烦我", "骚扰短信别发了"], 45),
    F("u_zh_guanggao", U, "zh", ["不要广告", "别发广告了", "不要再发广告", "我不需要这些广告", "广告别发了", "不需要推销",
        "别给我推销了", "不要再推广了", "别发促销短信了", "不需要这些优惠信息"], 45),
    F("u_zh_tuiding_sentence", U, "zh", ["我要退订", "帮我退订", "我要退订所有短信", "全部退订", "退订所有", "请帮我退订一下",
        "我想退订", "给我退订", "申请退订", "退订这个号码", "退订营销短信", "马上退订", "一键退订", "我退订了，别再发了"], 55),
    F("u_zh_angry", U, "zh", ["烦死了别发了", "烦不烦啊天天发", "有完没完", "天天发烦不烦", "能不能别发了", "你们有病吧天天发短信",
        "一天发好几条，烦死了", "还发？烦死了", "再发我就拉黑了", "够了别发了", "发发发，烦不烦", "消停点吧"], 50),
    F("u_zh_complain", U, "zh", ["再发就投诉", "再发我就举报", "我要投诉你们乱发短信", "12321举报", "已举报12321",
        "我已经向工信部投诉了", "再发打12321", "垃圾短信", "骚扰短信", "你们这是骚扰", "再骚扰我就报警", "我要去消协投诉你们发短信"], 50),
    F("u_zh_still", U, "zh", ["我已经退订了，为什么还在发", "退订了还发", "都退订了还发什么", "上次回了TD怎么还在发",
        "我早就退订了还给我发", "退订过了怎么还有", "说了不要了还发", "我退订多少次了还发", "已经回复退订了还在收到"], 45),
    F("u_zh_wrongnum_stop", U, "zh", ["我不是你们客户，别发了", "号码换人了，别再发了", "这个号码已经换主人了，请停止发送",
        "你们发错人了，别再发了", "我不是{name}，以后别发了", "这不是他的号了，删掉吧", "打错了，别再发", "换号了，请退订"], 40),
    F("u_zh_question_stop", U, "zh", ["能不能别再发了？", "可以不要再发了吗", "你们能停一下吗？", "怎么才能让你们别发了？",
        "可以把我号码删掉吗？", "能帮我退订吗？", "能不能把我取消掉", "可不可以别给我发短信了", "怎样才能不收到你们的短信？"], 45),
    F("u_zh_polite_formal", U, "zh", ["本人不再需要贵司的短信服务，请予以退订", "烦请停止向本号码发送营销信息", "恳请贵公司停止推送",
        "本人特此撤回接收营销短信的同意", "请贵司将本号码从推送名单中移除", "兹申请退订贵方全部营销短信",
        "请尊重本人意愿，停止发送商业短信"], 35),
    F("u_zh_colloquial", U, "zh", ["别整了", "不要了不要了", "快别发了", "行了别发了", "得了吧别发了", "发个毛啊", "滚",
        "滚吧", "给爷爬", "别搞了", "求别发了", "放过我吧别发了", "走开别发了"], 45),
    F("u_zh_mixed_en", U, "zh", ["别再send了", "不要再发sms了", "请stop", "stop吧别发了", "不要再text我", "unsubscribe谢谢",
        "请unsubscribe我", "帮我opt out", "cancel吧", "别spam我了", "no more短信"], 40),
    F("u_zh_pinyin", U, "raw", ["bie fa le", "biefale", "bie zai fa le", "buyao zai fa le", "bu yao fa le", "tingzhi fasong",
        "qu xiao ding yue", "quxiaodingyue", "jushou", "ju shou", "wo yao tuiding", "bang wo tuiding", "tui ding xie xie",
        "biezaifale"], 40),
    F("u_zh_homophone", U, "zh", ["别再发了", "别在发了", "不要在发了", "别再法了", "别发乐", "拒受", "句收", "取消定阅",
        "取消订约", "退定短信", "我要推订", "帮我腿订", "停止发松", "不要再发了把", "别再发叻"], 45),
    F("u_zh_long", U, "zh", ["你们这个短信一天发三四条，我真的受不了了，我从来没有注册过你们的会员，请马上把我的号码删掉，不要再发了",
        "我之前在你们店里买过一次东西，之后就天天收到短信，我不需要，请停止给我发送任何营销信息，谢谢",
        "说实话你们的短信太多了，开会的时候一直响，能不能别再发了，我已经忍很久了",
        "老人手机天天收到你们的广告，字又小看不懂，麻烦你们别再给这个号码发了",
        "你好，我是{name}，这个号码不需要你们的活动通知，请取消所有推送，以后也不要再发"], 30),
    # ===== unsubscribe: Cantonese =====
    F("u_yue_mhou", U, "yue", ["唔好再發", "唔好再發啦", "唔好再send嘢俾我", "咪再發啦", "咪再send", "唔該唔好再發", "唔好再傳短訊俾我",
        "唔好再煩我", "你哋唔好再發喇"], 40),
    F("u_yue_ting", U, "yue", ["唔該停咗佢", "停咗佢", "幫我停咗佢", "唔該幫我取消", "幫我取消訂閱", "唔該退訂", "我要退訂呀",
        "唔該幫我退訂", "停咗啲廣告", "取消晒佢"], 40),
    F("u_yue_msoeng", U, "yue", ["我唔想再收到", "唔想再收", "我唔要呢啲短訊", "唔使再send啦", "唔使再發", "我唔需要呢啲廣告",
        "唔想收你哋啲嘢", "唔要再收"], 35),
    F("u_yue_angry", U, "yue", ["好煩呀唔好再發", "煩死人，唔好再發", "你哋有完冇完", "日日都發，煩唔煩", "再發我就投訴你哋",
        "仲發？好煩呀", "收皮啦"], 30),
    # ===== unsubscribe: English =====
    F("u_en_stop_texting", U, "en", ["stop texting me", "please stop texting me", "stop sending me messages", "stop sending me these",
        "stop messaging me", "stop sending texts", "stop the texts", "stop contacting me", "stop spamming me",
        "stop sending me this crap", "quit texting me", "stop with the texts"], 60),
    F("u_en_dont_text", U, "en", ["don't text me anymore", "do not text me", "dont text me again", "do not contact me",
        "don't contact me again", "don't message me", "do not send me any more messages", "don't send me these",
        "never text me again", "dont msg me"], 50),
    F("u_en_remove", U, "en", ["remove me from your list", "remove me", "take me off your list", "take me off",
        "remove my number", "please remove my number from your list", "delete my number", "take my number off",
        "remove me from this list", "get me off this list", "delete me from your database"], 55),
    F("u_en_optout", U, "en", ["opt me out", "I want to opt out", "opt-out please", "unsubscribe me", "unsub me",
        "please unsubscribe me from this", "I'd like to unsubscribe", "sign me out", "I want out", "count me out",
        "I wish to unsubscribe"], 50),
    F("u_en_nomore", U, "en", ["no more texts", "no more messages please", "no more", "no more spam", "enough texts",
        "no more of these", "I don't want these messages", "I don't want these texts", "not interested, stop",
        "I don't want any more texts"], 45),
    F("u_en_angry", U, "en", ["leave me alone", "go away", "f off", "piss off and stop texting", "this is spam",
        "this is harassment", "why do you keep texting me??", "how many times do I have to say stop",
        "enough already!!", "get lost", "wtf stop", "seriously, stop", "i'm sick of these texts"], 50),
    F("u_en_complain", U, "en", ["I will report you to the FCC", "reported as spam", "I'm reporting this number",
        "text me again and I'll report you", "I'm filing a complaint with the FTC", "this is illegal, stop",
        "reporting to the attorney general", "blocked and reported", "reported to 7726"], 40),
    F("u_en_legal", U, "en", ["cease and desist", "I revoke my consent to receive messages", "I revoke consent",
        "I withdraw my consent", "cease all communication", "I do not consent to these messages",
        "consider this my revocation of consent under the TCPA", "you no longer have my permission to text me",
        "withdraw consent"], 40),
    F("u_en_still", U, "en", ["I already said stop", "I unsubscribed and you're still texting me", "i replied stop last week and still get these",
        "why am I still getting texts after opting out", "I opted out already, stop", "still getting these after I unsubscribed!",
        "I said STOP already"], 35),
    F("u_en_wrongnum_stop", U, "en", ["wrong number, stop texting", "wrong number please remove", "I'm not {name_en}, stop texting me",
        "this isn't {name_en}'s number anymore, remove it", "you have the wrong person, take me off your list",
        "new number, please stop sending"], 30),
    F("u_en_question_stop", U, "en", ["can you stop texting me?", "can you please stop?", "could you stop sending these?",
        "will you stop texting me", "can you remove me?", "could you take me off your list?",
        "how do I make these messages stop?", "can these texts stop?", "can u stop"], 45),
    F("u_en_slang", U, "en", ["stahp", "pls stop", "plz stop", "stop pls", "stop it", "stop already", "knock it off",
        "cut it out", "nope stop", "stop ffs", "uh stop", "STOP IT", "make it stop", "no thx stop"], 45),
    F("u_en_long", U, "en", ["I have asked multiple times to be removed and I keep getting these messages every single day, please remove my number from every list you have",
        "Hi, I never signed up for this and I don't know how you got my number. I don't want any of these promotions, so please stop texting me",
        "Please stop. I get at least three of these a day and it is really annoying when I am at work",
        "To whom it may concern, please remove this phone number from your marketing list effective immediately"], 25),
    # ===== unsubscribe: other languages =====
    F("u_es", U, "xx", ["BAJA", "baja", "dar de baja", "darme de baja", "quiero darme de baja", "no más mensajes",
        "no me envíen más mensajes", "no me manden más", "parar", "PARAR", "cancelar suscripción", "dejen de enviarme mensajes",
        "ya no quiero recibir mensajes", "no mas sms", "deténganse", "alto"], 55),
    F("u_fr", U, "xx", ["ARRET", "ARRÊT", "arrêt", "arrêtez", "Arrêtez svp", "désabonner", "me désabonner", "désinscription",
        "je veux me désabonner", "ne m'envoyez plus de messages", "plus de sms svp", "stop svp", "arrêtez de m'envoyer des sms",
        "je ne veux plus recevoir"], 50),
    F("u_de", U, "xx", ["STOPP", "stopp", "abmelden", "ich möchte mich abmelden", "abbestellen", "keine SMS mehr",
        "keine Nachrichten mehr bitte", "hören Sie auf mir zu schreiben", "bitte nicht mehr schreiben", "austragen",
        "bitte austragen", "Abo beenden", "lasst mich in Ruhe"], 50),
    F("u_ja", U, "xx", ["配信停止", "停止", "配信停止してください", "解除", "配信解除", "送らないで", "送らないでください",
        "もう送らないで", "受信拒否", "やめて", "やめてください", "メール停止", "登録解除", "迷惑です、送らないで"], 50),
    F("u_ko", U, "xx", ["수신거부", "수신 거부", "거부", "그만", "그만 보내세요", "보내지 마세요", "문자 그만", "해지", "구독 취소",
        "수신거부 합니다", "광고 문자 그만 보내", "더 이상 보내지 마세요", "취소"], 50),
    F("u_vi", U, "xx", ["HỦY", "hủy", "huy", "ngừng", "dừng lại", "dừng", "hủy đăng ký", "đừng gửi nữa", "đừng nhắn tin nữa",
        "không nhận tin nữa", "từ chối", "tôi muốn hủy đăng ký", "ngưng gửi tin nhắn"], 45),
    F("u_more_lang", U, "xx", ["basta", "annulla iscrizione", "non inviatemi più messaggi", "parar de enviar", "sair",
        "não quero mais mensagens", "cancelar inscrição", "стоп", "отписаться", "не присылайте больше", "berhenti",
        "jangan kirim lagi", "หยุด", "ยกเลิก", "afmelden", "stoppen", "avsluta", "توقف", "dur", "iptal"], 50),
    # ===== unsubscribe: pasted marketing with a code =====
    F("u_paste_zh", U, "zh", ["{mkt_zh} TD", "TD {mkt_zh}", "{mkt_zh}\n退订", "退订！{mkt_zh}", "{mkt_zh} 别再发了",
        "{mkt_zh}\n\nT", "{mkt_zh} 拒收"], 30, wrap=False),
    F("u_paste_en", U, "en", ["{mkt_en} STOP", "STOP {mkt_en}", "{mkt_en}\nstop", "{mkt_en}\n\nUnsubscribe",
        "{mkt_en} remove me"], 25, wrap=False),
    F("u_paste2", U, "zh", ["{mkt_zh}\n我要退订", "别再发这种了：{mkt_zh}", "{mkt_zh} 烦死了，退订", "{mkt_en}\nSTOP!!!",
        "{mkt_en} please stop sending these", "TD\n{mkt_zh}"], 25, wrap=False),
    # ===== resubscribe =====
    F("r_code", R, "en", ["START", "start", "Start", "UNSTOP", "unstop", "SUBSCRIBE", "subscribe", "S T A R T", "ＳＴＡＲＴ",
        "START!", "start please", "UNSTOP pls", "Start again", "RESUME", "resume"], 40),
    F("r_zh_chongxin", R, "zh", ["重新订阅", "我要重新订阅", "重新订阅短信", "帮我重新订阅", "再订阅", "重新开通", "重新开通短信通知",
        "我想重新订阅你们的短信", "重新订阅一下"], 40),
    F("r_zh_huifu", R, "zh", ["恢复接收", "恢复推送", "恢复订阅", "恢复短信", "帮我恢复接收短信", "我要恢复接收", "重新接收短信",
        "恢复发送吧", "给我恢复一下推送"], 40),
    F("r_zh_quxiaotuiding", R, "zh", ["取消退订", "我要取消退订", "撤销退订", "退订撤回", "撤回退订", "帮我取消退订", "取消刚才的退订",
        "取消退订谢谢", "之前的退订取消掉"], 40),
    F("r_zh_mistake", R, "zh", ["我刚才误点了退订，请恢复", "不小心回了TD，帮我恢复", "退订是误操作，请重新给我发", "刚才回错了，我还要收短信",
        "手滑退订了，帮我加回来", "我退订错了，恢复一下", "误回复了退订，请继续给我发优惠信息"], 35),
    F("r_zh_want", R, "zh", ["我想重新收到你们的优惠信息", "我还想接收你们的短信", "把我加回名单", "重新把我加进去", "我又想收到活动通知了",
        "可以继续给我发优惠了", "我要开通短信提醒", "开通营销短信"], 35),
    F("r_yue", R, "yue", ["我想重新訂閱", "唔該幫我重新訂閱", "幫我恢復接收", "我想再收返你哋啲短訊", "唔小心退訂咗，幫我加返",
        "取消退訂", "恢復推送"], 30),
    F("r_en_back", R, "en", ["sign me back up", "subscribe me again", "put me back on the list", "add me back", "re-subscribe",
        "resubscribe", "resubscribe me", "I want to receive texts again", "please resume my messages", "opt me back in",
        "opt in", "opt-in", "I'd like to opt in again", "turn my texts back on"], 50),
    F("r_en_mistake", R, "en", ["I opted out by mistake, restore me", "I hit stop by accident, please add me back",
        "sorry I texted STOP by mistake, resubscribe me", "didn't mean to unsubscribe, put me back",
        "accidentally unsubscribed, can you restore my subscription", "oops I didn't mean to stop, start again please",
        "undo my unsubscribe"], 35),
    F("r_xx", R, "xx", ["ALTA", "darme de alta", "quiero volver a recibir mensajes", "reanudar", "suscribirme de nuevo",
        "réabonner", "je veux me réabonner", "réactiver", "wieder anmelden", "anmelden", "ich möchte wieder Nachrichten erhalten",
        "配信再開", "再開", "再登録", "재구독", "다시 받기", "수신 동의", "đăng ký lại", "nhận tin lại", "riattiva", "voltar a receber",
        "подписаться снова"], 50),
    # ===== help =====
    F("h_code", H, "en", ["HELP", "help", "Help", "INFO", "info", "H E L P", "ＨＥＬＰ", "HELP!", "help?", "Info?", "？", "?", "??",
        "help please", "HELP pls"], 40),
    F("h_zh_code", H, "zh", ["帮助", "求助", "客服", "人工", "转人工", "人工客服", "转人工客服", "帮助？", "我要找客服", "客服在吗",
        "联系客服", "幫助"], 40),
    F("h_zh_how", H, "zh", ["怎么退订", "如何退订？", "退订回复什么", "怎么取消订阅啊", "退订要回什么", "TD是什么意思", "回T是什么意思",
        "退订的方法是什么", "怎样退订", "在哪里退订", "退订需要收费吗", "怎么才能退订呀"], 50),
    F("h_zh_who", H, "zh", ["你们是谁", "这是哪家公司", "你是谁啊", "这个号码是谁", "你们是什么平台", "这是什么短信", "哪里发来的",
        "你们怎么有我号码的", "你们是干什么的", "多久发一次", "这是啥", "请问是哪位"], 50),
    F("h_zh_person", H, "zh", ["怎么联系人工", "能给个客服电话吗", "客服电话多少", "有没有人工服务", "我要跟真人说话", "找个人跟我聊",
        "怎么投诉人工处理"], 35),
    F("h_yue", H, "yue", ["點樣退訂", "你哋係邊個", "呢個係咩短訊", "點樣取消", "有冇客服", "搵真人", "幫手"], 30),
    F("h_en_how", H, "en", ["how do I unsubscribe?", "how do i stop these?", "what do I reply to unsubscribe", "how do I opt out",
        "what does TD mean", "what does reply STOP mean", "how can I unsubscribe from this", "is there a way to unsubscribe?",
        "what's the unsubscribe code", "how to opt out?", "does replying stop cost money?"], 50),
    F("h_en_who", H, "en", ["who is this?", "who is this", "what is this?", "what is this number", "who are you", "what company is this?",
        "how did you get my number?", "what is this service", "how often will you text me?", "who sent this", "wait who's this",
        "what are these texts"], 50),
    F("h_en_person", H, "en", ["how do I reach a person", "can I talk to a real person", "I need customer service",
        "give me a number to call", "is there a human I can talk to", "contact support", "agent please", "customer support"], 35),
    F("h_xx", H, "xx", ["AYUDA", "ayuda", "¿quién es?", "cómo me doy de baja", "AIDE", "aide", "qui êtes-vous ?",
        "comment me désabonner", "HILFE", "hilfe", "wer ist das?", "wie kann ich mich abmelden", "ヘルプ", "助けて", "どなたですか",
        "解除方法を教えて", "도움말", "도움", "누구세요?", "수신거부 어떻게 해요", "trợ giúp", "giúp tôi", "ai vậy?", "aiuto",
        "ajuda", "помощь"], 55),
    # ===== status =====
    F("s_zh", S, "zh", ["退订成功了吗", "我退订成功了吗？", "退订了吗", "我的退订生效了没", "退订处理好了吗", "是否已经退订",
        "查一下我退订了没有", "我现在还在名单上吗", "我已经退订成功了吧？", "退订办好了没", "帮我看看退订成功没",
        "退订什么时候生效", "我的号码退订了吗"], 55),
    F("s_zh_ref", S, "zh", ["我的退订申请进度怎么样了", "退订申请处理到哪一步了", "退订受理了吗", "查询退订状态", "退订状态查询",
        "我之前申请的退订办了没", "退订回执编号是多少", "我回复过TD，成功了吗"], 40),
    F("s_yue", S, "yue", ["退訂成功未", "我退訂咗未呀", "搞掂未", "退訂咗未", "我嘅退訂得咗未", "幫我查下退訂咗未"], 30),
    F("s_en", S, "en", ["did my stop work?", "am I unsubscribed?", "am i unsubscribed now", "was I removed?", "is my opt-out done?",
        "did you get my STOP?", "did it work?", "did my unsubscribe go through?", "have I been removed from the list?",
        "is my number unsubscribed", "confirm that I'm unsubscribed?", "just checking I'm off the list?"], 55),
    F("s_en_ref", S, "en", ["what's the status of my opt-out request", "status of my unsubscribe", "any update on my opt out?",
        "when will my unsubscribe take effect?", "is my removal processed?", "can you check if my STOP was processed",
        "what's my reference number for the opt out"], 40),
    F("s_xx", S, "xx", ["¿ya me dieron de baja?", "¿funcionó mi baja?", "suis-je désabonné ?", "mon désabonnement a-t-il marché ?",
        "bin ich abgemeldet?", "hat die Abmeldung geklappt?", "解除できましたか", "配信停止できましたか", "수신거부 됐나요?",
        "해지 됐나요?", "tôi đã hủy thành công chưa?", "hủy được chưa?"], 40),
    F("s_zh_colloquial", S, "zh", ["退掉了没", "我那个退订弄好了没", "退订到底成功没有啊", "你们收到我的退订了吗", "我还会收到短信吗",
        "以后还会给我发吗？我退订了", "回了退订就不会再发了吧？", "确认一下我已经退订了", "退订了没给个准话"], 40),
    F("s_en_casual", S, "en", ["so am I off the list or not?", "r u gonna keep texting me or am I out?", "did that work",
        "did the stop go thru", "u got my unsubscribe right?", "just confirming my opt out went through",
        "is that it, no more texts now?", "will I still get texts after replying stop?", "am I still subscribed?"], 40),
    F("h_zh_programme", H, "zh", ["这个短信服务是什么", "你们会多久发一次短信", "为什么给我发短信", "我什么时候订阅的", "这个会收费吗",
        "短信是自动发的吗", "有网站吗", "你们公司地址在哪", "怎么查看我的订阅"], 40),
    F("h_en_programme", H, "en", ["why am I getting this?", "what is this program", "how much do these texts cost",
        "when did I sign up for this?", "is this automated?", "what's your website", "what are the terms",
        "do you have a privacy policy", "msg frequency?"], 40),
    F("r_en_casual", R, "en", ["ok start sending again", "u can text me again", "I changed my mind, send me deals",
        "I want the texts back", "please reactivate my texts", "reactivate", "turn notifications back on",
        "put my number back"], 35),
    F("r_zh_casual", R, "zh", ["我改主意了，继续给我发优惠吧", "还是给我发吧，我要优惠", "重新给我开通一下", "我想重新加入会员短信",
        "恢复我的短信通知", "重新开启推送", "开启短信通知"], 35),
    F("u_en_notinterested", U, "en", ["not interested, please stop", "not interested remove me", "I'm not interested in these texts, stop",
        "no thank you, please stop texting", "no thanks, unsubscribe", "I don't need these, stop"], 30),
    F("u_zh_buyong", U, "zh", ["不用再给我发了", "不需要再发了", "以后不需要了，别发", "我不需要这些短信，别发了", "用不着给我发",
        "不需要通知我了", "这些短信我都不需要"], 35),
    F("u_xx_more2", U, "xx", ["no quiero recibir más", "por favor no me escriban más", "basta de mensajes", "n'écrivez plus",
        "laissez-moi tranquille", "nicht mehr senden", "Abmelden bitte", "もういらない", "連絡しないで", "문자 보내지 마",
        "연락하지 마세요", "đừng làm phiền", "không muốn nhận tin nhắn"], 40),
    # ===== other: chit-chat =====
    F("o_thanks", O, "raw", ["thanks", "Thank you", "thx", "ok", "OK", "okay", "k", "👍", "好的", "好的谢谢", "收到", "谢谢", "嗯嗯",
        "知道了", "好", "行", "明白", "😀😀", "❤️", "🙂", "哈哈", "lol", "nice", "cool", "got it", "多謝", "ok👌", "Merci",
        "gracias", "danke", "ありがとう", "감사합니다", "cảm ơn", "好嘅", "noted", "fine", "alright", "已读", "了解",
        "好的收到", "ok thanks", "收到了谢谢", "np", "will do", "嗯知道了"], 70),
    F("o_polite_only", O, "zh", ["你好", "您好，谢谢", "谢谢", "你好，谢谢", "拜托了", "亲", "喂", "你好啊", "谢谢配合", "辛苦了",
        "hi thanks", "hello, thank you", "hey", "thank you!", "please", "sorry", "ok thanks", "Hi there.", "唔該", "多謝"], 50),
    F("o_greet", O, "zh", ["你好", "您好", "在吗", "早上好", "晚上好", "hello", "hi", "hey", "Good morning", "新年快乐", "中秋快乐",
        "哈喽", "Hi there", "喂"], 40),
    F("o_yes_no_bare", O, "raw", ["yes", "YES", "Yes", "Y", "y", "yeah", "yep", "是", "是的", "对", "对的", "好的", "可以", "嗯",
        "sure", "ok", "确认", "确定", "Sí", "oui", "ja", "はい", "네", "có"], 40),
    F("o_codes", O, "raw", ["{code6}", "1", "2", "0", "00", "123", "{num}", "A", "B", "C", "8888", "#", "*", "1234", "3", "ABC",
        "x", "Q", "1.", "66", "520"], 40),
    F("o_emoji", O, "raw", ["😀", "😂😂😂", "🙏", "👌", "🎉", "😍", "🤣", "❤️❤️", "🌹", "💪", "😘", "🥰", "👏👏", "😊"], 20),
    F("o_random", O, "zh", ["明天下午三点见", "我在开会，晚点回", "这个活动到几号？", "我刚看到", "你们店在哪里", "几点开门", "周末营业吗",
        "有停车位吗", "可以用微信付款吗", "积分怎么用", "优惠券怎么领", "这个价格包邮吗", "发票怎么开", "会员卡丢了怎么办"], 55),
    F("o_random_en", O, "en", ["what time do you open", "see you tomorrow", "are you open on Sunday?", "do you deliver?",
        "how much is it", "where is your store", "is this deal still on", "can I use the coupon online?", "sounds good",
        "I'll come by later", "call me back", "I'm at work"], 50),
    # ===== other: look-alikes and hard negatives =====
    F("o_booking_tuiding", O, "zh", ["我想退订{day}的{hotel}", "{hotel}可以退订吗", "{day}的{hotel}帮我退订一下", "退订{hotel}要扣钱吗",
        "我要退订房间", "酒店退订怎么操作", "机票退订手续费多少", "帮我把{day}订的{hotel}退掉", "退订的房费什么时候退回", "帮我退订{hotel}", "{hotel}退订规则", "能退订{hotel}吗", "麻烦退订{day}的{hotel}",
        "门票能退订吗", "{hotel}退订成功了吗"], 60),
    F("o_refund", O, "zh", ["我要退货", "怎么退款", "退货地址发我", "退款什么时候到账", "申请退款", "{goods}我想退货", "退款进度查一下",
        "退货退款", "可以七天无理由退货吗", "我要换货", "退款还没到"], 50),
    F("o_cancel_order", O, "zh", ["取消订单", "我要取消订单", "帮我取消订单{order}", "订单取消一下", "怎么取消订单", "取消预约",
        "取消{day}的预约", "我想取消这个订单", "订单能取消吗", "取消{goods}的订单"], 50),
    F("o_shipping", O, "zh", ["别发货了，我要退款", "先别发货", "不要发货了", "{goods}别发了，我不要了", "别发顺丰，发中通", "{goods}暂时别发", "{goods}不用发了", "那个{goods}不要寄了", "{goods}不要发了，退款吧",
        "还没发货吗", "什么时候发货", "发货了吗", "能不能今天发", "别发快递，我自己来取", "地址错了先别发", "发错货了"], 55),
    F("o_brands_letters", O, "zh", ["T恤有XL码吗", "这件T恤多少钱", "N95口罩还有吗", "N95有货吗", "TD Bank几点开门", "R码是什么尺码",
        "要一件白色T恤", "有没有T字头的车次", "N次方会员是什么", "我要买N95", "T3航站楼怎么走", "R18是什么"], 50),
    F("o_en_lookalike", O, "en", ["I'll stop by later", "stop by the store tomorrow", "can't stop laughing", "I quit smoking",
        "I quit my job today lol", "bus stop", "one stop shop", "see you at the end of the month", "don't stop believing",
        "TD Bank hours?", "is this TD Bank", "my TD account", "the end", "I need a T-shirt in XL", "N95 masks in stock?",
        "I'll start tomorrow", "where do I start", "remove the item from my cart", "stop light", "non-stop flights?",
        "cancel my order", "I want to cancel my order {order}", "cancel my appointment", "can I cancel my reservation",
        "help me track my order", "help, my package never arrived", "need help with my order {order}",
        "I want to return this", "refund please", "help with my account login"], 90),
    F("o_negation_zh", O, "zh", ["不要退订", "不退订", "别退订我", "我没说要退订", "我不退订", "不用退订", "没让你退订", "不要取消",
        "别取消我的订阅", "我没有要退订的意思", "不要取消退订", "别取消退订", "保持退订就行，不用恢复", "不要退订，继续发", "继续发吧我喜欢", "我不想退订", "请不要把我退订了"], 50),
    F("o_negation_en", O, "en", ["don't unsubscribe me", "do not unsubscribe me", "don't stop sending deals", "don't stop",
        "keep sending", "keep them coming", "I didn't say stop", "please don't remove me", "I don't want to unsubscribe",
        "no don't cancel", "never stop sending me deals lol", "I never asked to opt out"], 45),
    F("o_wrongnum", O, "zh", ["你发错人了", "我不是{name}", "打错了", "你找错人了", "这不是{name}的号码", "我不认识{name}", "发错了吧",
        "wrong number", "you have the wrong person", "I'm not {name_en}", "who is {name_en}? wrong number", "wrong person"], 45),
    F("o_wrongnum2", O, "en", ["who is {name_en}? wrong number", "I don't know any {name_en}", "not {name_en}", "this isn't {name_en}",
        "你们找谁？我不是{name}", "我不认识这个人", "发错号码了吧", "wrong #", "no {name_en} here", "you've got the wrong number"], 40),
    F("o_insult", O, "zh", ["你们是骗子", "骗子公司", "你们公司真差劲", "服务太差了", "垃圾公司", "你们的东西太贵了", "上次买的质量很差",
        "scammers", "your service sucks", "you guys are terrible", "worst store ever", "liars"], 45),
    F("o_order_help", O, "zh", ["我的快递到哪了", "帮我查一下订单", "订单{order}怎么还没到", "快递一直不动", "物流信息查一下",
        "我的包裹丢了", "帮帮我，快递显示签收了但我没收到", "求助，订单付款失败", "客服帮我看看订单{order}", "订单号{order}帮我查查"], 50),
    F("o_paste_question", O, "zh", ["{mkt_zh} 这个活动到几号？", "{mkt_zh}\n这个券怎么用", "{mkt_zh} 门店在哪", "{mkt_en} is this still valid?",
        "{mkt_en}\nwhat sizes do you have", "{mkt_zh}\n可以叠加使用吗"], 30, wrap=False),
    F("o_xx", O, "xx", ["¿dónde está mi pedido?", "cancelar mi pedido", "où est ma commande", "annuler ma commande",
        "wo ist meine Bestellung", "Bestellung stornieren", "注文をキャンセルしたい", "주문 취소", "배송 언제 와요?", "đơn hàng của tôi đâu",
        "hola", "bonjour", "hallo", "こんにちは", "안녕하세요", "xin chào"], 45),
    # ===== second paraphrase families of the concepts that had one: each side of the split sees one =====
    F("o_booking_tuiding2", O, "zh", ["{day}的{hotel}不去了，退订", "能帮我退订{hotel}吗", "退订后多久退款", "{hotel}退订政策是什么",
        "我订的{hotel}想退订", "退订{day}的预约", "退订了{hotel}钱什么时候回来", "这个{hotel}退订要手续费吗", "我要退订这次旅行",
        "航班取消了，帮我退订", "退订酒店", "退訂機票"], 50),
    F("o_shipping2", O, "zh", ["{goods}先不要发了", "别寄了，我不要了", "不要发快递", "暂停发货", "{goods}不要再发了，已经买到了",
        "订单先别发", "发货地址改一下", "你们发货太慢了", "明天再发吧", "{goods}发了没"], 45),
    F("o_brands_letters2", O, "en", ["do you have this T-shirt in M", "TD Ameritrade login help", "N95 or KN95?", "Is R&B night on Friday",
        "Model T", "size S or M", "T-Mobile store near me", "my TD card was declined", "N64 games in stock?", "R2 in stock?",
        "白T恤还有吗", "T台秀几点开始", "N卡还是A卡好", "R级电影"], 50),
    F("r_en_mistake2", R, "en", ["I replied stop by accident", "oops wrong reply, keep sending me texts, I want them",
        "that stop was a mistake, please restore my texts", "my kid texted stop, please put me back on",
        "restore my subscription", "reinstate my texts please", "I want to undo the stop", "cancel my opt out"], 35),
    F("r_zh_mistake2", R, "zh", ["刚才那个退订不算，恢复吧", "孩子乱回的退订，帮我恢复", "退订回错了，撤销", "我后悔退订了，能恢复吗",
        "之前的TD作废", "恢复我的会员短信"], 30),
    F("u_ja2", U, "xx", ["配信をやめてください", "もう結構です", "メッセージ不要", "受け取りたくない", "送信停止", "解約", "退会",
        "通知をオフにして", "やめろ", "いらない"], 40),
    F("u_ko2", U, "xx", ["그만 보내", "수신 원하지 않습니다", "문자 사절", "보내지마", "광고 사절", "수신 중지", "스팸 그만", "탈퇴",
        "알림 끊어주세요"], 40),
    F("u_es2", U, "xx", ["no me envíes más", "quítenme de la lista", "borren mi número", "no quiero mensajes", "cancelar",
        "basta ya", "dejen de mandar", "no más"], 35),
    F("h_yue2", H, "yue", ["你哋係咩公司", "點樣先可以唔收", "邊度嚟㗎", "有冇人工客服", "點聯絡你哋", "呢個號碼係邊個", "我想問下點退訂"], 30),
    F("s_zh2", S, "zh", ["退订有结果了吗", "我上次退订成功没有", "退订弄好了吗？", "我还在你们的发送名单里吗", "退订处理完了没", "退订有没有生效",
        "帮我确认一下退订成功了", "退订失败了吗"], 40),
    F("s_en2", S, "en", ["was my opt out successful?", "is the unsubscribe done", "did my removal work?", "am I off your list?",
        "confirm my unsubscribe went through", "did I unsubscribe successfully?", "is it done? the stop?"], 35),
    F("o_yes_no_bare2", O, "raw", ["YES!", "yes.", "Yeah", "Yup", "ok sure", "sounds good", "对呀", "是啊", "嗯好", "好呀", "可以的",
        "no problem", "alright", "fine", "noted"], 30),
    F("o_negation2", O, "zh", ["我没要退订啊", "不是要退订", "谁说我要退订了", "千万别退订", "不用取消", "我还要收的", "别停，我喜欢你们的活动",
        "i'm not unsubscribing", "don't take me off the list", "please keep me subscribed"], 40),
    F("o_paste_question2", O, "zh", ["{mkt_zh} 这个券今天能用吗", "请问这个是真的吗？{mkt_zh}", "{mkt_zh}\n在哪个门店", "{mkt_en} what time does it end",
        "{mkt_en}\ncan I use this in store?", "{mkt_zh} 我是会员吗"], 25, wrap=False),
    # ===== context: replies to our clarification question =====
    F("c_yes", U, "raw", ["是", "是的", "对", "对的", "好", "好的", "确认", "确定", "嗯", "yes", "Yes", "YES", "Y", "y", "OK", "ok",
        "yes please", "yep", "yeah", "sure", "confirm", "确认退订", "是的谢谢", "👍", "係", "系", "好呀", "对，不要了", "Sí", "oui",
        "ja", "はい", "네", "có", "yes stop", "yes!!", "可以", "要"], 60, context="clarification"),
    F("c_no", O, "raw", ["不", "不是", "不用", "不要退订", "no", "No", "NO", "nope", "no thanks, keep them", "不是的", "没有",
        "别退订", "否", "no don't", "唔係", "non", "nein", "いいえ", "아니요", "không", "不用了，继续发"], 40,
        context="clarification"),
    F("c_other", U, "raw", ["TD", "退订", "STOP", "别再发了", "stop texting me", "取消"], 12, context="clarification"),
    F("c_help", H, "raw", ["你们是谁", "who is this?", "HELP", "怎么退订"], 8, context="clarification"),
]


# --- frames: sentence templates over the pooled core phrasings ------------------------------------
# Every phrase of the families above goes into a pool by label and language ({U_ZH}, {H_EN} …); the
# frame families below put pooled phrases into new sentence shapes. A frame family is a template
# family like any other: it sits on one side of the split only.

POOLED_LANGS = {"zh": "ZH", "yue": "YUE", "en": "EN", "xx": "XX"}
POOL_EXCLUDE = {"u_code_td", "u_code_td_en", "u_code_stop", "u_code_stop_zh", "u_code_polite_zh", "u_code_polite_en",
                "u_code_mixed", "u_code_typo", "u_code_typo_zh", "h_code", "r_code", "o_brands_letters"}  # fmt: skip


def pools(families: list[Family]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for fam in families:
        if fam.id in POOL_EXCLUDE or not fam.wrap or fam.context or fam.lang not in POOLED_LANGS:
            continue
        key = f"{fam.label[0].upper()}_{POOLED_LANGS[fam.lang]}"
        out.setdefault(key, []).extend(p for p in fam.phrases if "{" not in p)
    return out


POOLS: dict[str, list[str]] = {}
FRAMES: list[Family] = [
    # unsubscribe, Chinese
    F("uf_zh_bare", U, "zh", ["{U_ZH}", "{U_ZH}，{U_ZH}", "{U_ZH}！{U_ZH}！"], 120),
    F("uf_zh_reason", U, "zh", ["{U_ZH}，我不需要", "我不需要这些，{U_ZH}", "{U_ZH}，我没注册过", "我从没注册过你们，{U_ZH}",
        "{U_ZH}，天天发太烦了", "太多了，{U_ZH}", "{U_ZH}，我在上班"], 90),
    F("uf_zh_addr", U, "zh", ["{brand}你好，{U_ZH}", "{brand}，{U_ZH}", "致{brand}：{U_ZH}", "{brand}的客服，{U_ZH}", "{U_ZH}，{brand}"], 90),
    F("uf_zh_repeat", U, "zh", ["说了多少遍了，{U_ZH}", "第三次说了，{U_ZH}", "再说一次，{U_ZH}", "我上周就说过，{U_ZH}",
        "讲过很多次了，{U_ZH}"], 70),
    F("uf_zh_time", U, "zh", ["{U_ZH}，马上", "现在就{U_ZH}", "从今天开始{U_ZH}", "以后都{U_ZH}", "{U_ZH}，立刻"], 70),
    F("uf_zh_code", U, "zh", ["{U_ZH} TD", "TD，{U_ZH}", "{U_ZH}，回TD了", "退订！{U_ZH}", "{U_ZH}，退订", "T，{U_ZH}"], 70),
    F("uf_zh_angry", U, "zh", ["{U_ZH}，再发投诉", "{U_ZH}，烦死了", "{U_ZH}！！！😡", "烦死了，{U_ZH}", "{U_ZH}，不然举报",
        "我受够了，{U_ZH}"], 70),
    F("uf_yue", U, "yue", ["{U_YUE}", "{U_YUE}，唔該", "{brand}，{U_YUE}", "{U_YUE}，好煩呀", "講咗好多次，{U_YUE}", "{U_YUE} TD"], 90),
    # unsubscribe, English and other languages
    F("uf_en_bare", U, "en", ["{U_EN}", "{U_EN}. {U_EN}", "{U_EN}!!"], 120),
    F("uf_en_reason", U, "en", ["{U_EN}, I never signed up", "{U_EN}, not interested", "I never signed up for this. {U_EN}",
        "{U_EN}, I get too many", "{U_EN}, I'm at work", "not interested. {U_EN}"], 90),
    F("uf_en_addr", U, "en", ["{brand_en}, {U_EN}", "Hey {brand_en} {U_EN}", "{U_EN} {brand_en}", "Dear {brand_en}, {U_EN}",
        "to whoever runs this: {U_EN}"], 80),
    F("uf_en_repeat", U, "en", ["for the last time, {U_EN}", "I've said it before, {U_EN}", "third time asking: {U_EN}",
        "again: {U_EN}", "how many times, {U_EN}"], 70),
    F("uf_en_code", U, "en", ["STOP. {U_EN}", "{U_EN} STOP", "{U_EN}, unsubscribe", "unsubscribe. {U_EN}", "{U_EN} - stop"], 70),
    F("uf_en_angry", U, "en", ["{U_EN} or I'll report you", "{U_EN}!!! 😡", "ugh {U_EN}", "{U_EN}, so annoying",
        "omg {U_EN}", "{U_EN}, this is harassment"], 70),
    F("uf_xx", U, "xx", ["{U_XX}", "{U_XX}!", "{U_XX} {U_XX}", "{U_XX}, {brand_en}", "{brand_en}: {U_XX}"], 110),
    F("uf_mixed", U, "zh", ["{U_ZH} {U_EN}", "{U_EN}，{U_ZH}", "{U_EN}吧，{U_ZH}"], 50),
    # resubscribe
    F("rf_zh", R, "zh", ["{R_ZH}", "{brand}，{R_ZH}", "{R_ZH}，谢谢", "之前退订了，现在{R_ZH}", "{R_ZH}吧", "你好，{R_ZH}"], 100),
    F("rf_zh_reason", R, "zh", ["{R_ZH}，我想收优惠", "我改主意了，{R_ZH}", "{R_ZH}，我需要活动通知", "上次是误操作，{R_ZH}"], 60),
    F("rf_en", R, "en", ["{R_EN}", "{brand_en}, {R_EN}", "{R_EN} thanks", "I changed my mind. {R_EN}", "hi {R_EN}",
        "{R_EN}, I want the deals"], 100),
    F("rf_yue_xx", R, "xx", ["{R_YUE}", "{R_XX}", "{R_XX} por favor", "{R_YUE}，唔該", "{R_XX}, merci", "{R_XX} bitte"], 60),
    # help
    F("hf_zh", H, "zh", ["{H_ZH}", "请问{H_ZH}", "{brand}，{H_ZH}", "{H_ZH}？", "你好，{H_ZH}", "我想问一下，{H_ZH}"], 110),
    F("hf_en", H, "en", ["{H_EN}", "quick question, {H_EN}", "{H_EN}?", "hi, {H_EN}", "umm {H_EN}", "sorry, {H_EN}"], 110),
    F("hf_yue_xx", H, "xx", ["{H_YUE}", "{H_XX}", "{H_YUE}呀？", "{H_XX}?"], 60),
    # status
    F("sf_zh", S, "zh", ["{S_ZH}", "请问{S_ZH}", "{brand}，{S_ZH}", "昨天回了TD，{S_ZH}", "{S_ZH}？", "你好，{S_ZH}",
        "我上周申请了退订，{S_ZH}"], 110),
    F("sf_en", S, "en", ["{S_EN}", "hi, {S_EN}", "I texted STOP yesterday, {S_EN}", "{S_EN}?", "quick question: {S_EN}",
        "{brand_en}, {S_EN}"], 110),
    F("sf_yue_xx", S, "xx", ["{S_YUE}", "{S_XX}", "{S_YUE}呀？", "{S_XX} ?"], 50),
    # other
    F("of_zh", O, "zh", ["{O_ZH}", "请问{O_ZH}", "{brand}，{O_ZH}", "你好，{O_ZH}", "{O_ZH}，谢谢", "{O_ZH}？"], 160),
    F("of_zh_pair", O, "zh", ["{O_ZH}，{O_ZH}", "{O_ZH}。另外{O_ZH}"], 80),
    F("of_en", O, "en", ["{O_EN}", "hi, {O_EN}", "{O_EN}, thanks", "{brand_en}: {O_EN}", "hey {O_EN}", "{O_EN}?"], 160),
    F("of_xx", O, "xx", ["{O_XX}", "{O_XX}!", "{O_XX}?"], 50),
]

# --- rendering -------------------------------------------------------------------------------------

_SLOT = re.compile(r"\{(\w+)\}")
KEYBOARD = {
    "q": "wa", "w": "qes", "e": "wrd", "r": "etf", "t": "ryg", "y": "tuh", "u": "yij", "i": "uok", "o": "ipl",
    "p": "o", "a": "qsz", "s": "awdx", "d": "sefc", "f": "drgv", "g": "fthb", "h": "gyjn", "j": "hukm",
    "k": "jil", "l": "kop", "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}  # fmt: skip
FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}


def _fill(template: str, rng: random.Random) -> str:
    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "td":
            return rng.choice(TD_FORMS)
        if key == "stop":
            return rng.choice(STOP_FORMS)
        if key == "tuiding":
            return rng.choice(TUIDING_FORMS)
        if key == "mkt_zh":
            return _fill(rng.choice(MARKETING_ZH), rng)
        if key == "mkt_en":
            return _fill(rng.choice(MARKETING_EN), rng)
        if key in POOLS:
            return _fill(rng.choice(POOLS[key]), rng)
        return rng.choice(SLOTS[key])

    return _SLOT.sub(one, template)


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isascii() or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # swap neighbours
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop
        return word[:i] + word[i + 1 :]
    if kind == 2:  # double
        return word[:i] + word[i] + word[i:]
    near = KEYBOARD.get(word[i].lower())
    return word[:i] + rng.choice(near) + word[i + 1 :] if near else word


def _perturb(text: str, fam: Family, rng: random.Random) -> str:
    if fam.lang in ("zh", "yue") or (fam.lang == "raw" and not text.isascii()):
        p = rng.random()
        if fam.lang == "yue" or p < 0.3:
            text = rng.choice((_s2hk, _s2t, _s2tw)).convert(text) if fam.lang != "yue" or p < 0.9 else text
    if any(c.isascii() and c.isalpha() for c in text):
        p = rng.random()
        if p < 0.15:
            text = text.upper()
        elif p < 0.35:
            text = text.lower()
        elif p < 0.42:
            text = text[:1].upper() + text[1:]
        if rng.random() < 0.12 and fam.lang in ("en", "xx"):
            words = text.split(" ")
            j = rng.randrange(len(words))
            words[j] = _typo(words[j], rng)
            text = " ".join(words)
        if rng.random() < 0.04:
            text = "".join(FULLWIDTH.get(c, c) for c in text)
    p = rng.random()
    if p < 0.06:
        text = text + rng.choice(EMOJI_ANGRY if fam.label == U else EMOJI_NEUTRAL)
    elif p < 0.1:
        text = rng.choice(EMOJI_NEUTRAL) + " " + text
    if rng.random() < 0.05:
        text = "  " + text + " "
    return text


def _wrap(text: str, fam: Family, rng: random.Random) -> str:
    lang = fam.lang if fam.lang in POLITE_PRE else "xx"
    if fam.lang == "zh" and text.isascii():
        lang = rng.choice(("zh", "en"))
    pre = _fill(rng.choice(POLITE_PRE[lang]), rng)
    post = rng.choice(POLITE_POST[lang])
    if text.endswith(("?", "？")) and post in ("。", ".", "!", "！"):
        post = ""
    return pre + text + post


def generate(fam: Family, rng: random.Random) -> list[str]:
    seen: dict[str, None] = {}
    if fam.hand:
        return list(dict.fromkeys(fam.phrases))
    # every phrase at least once in its plain form, then wrapped and perturbed variants
    n = round(fam.n * N_FACTOR)
    for phrase in fam.phrases:
        if len(seen) >= n:
            break
        seen.setdefault(_fill(phrase, rng), None)
    tries = 0
    while len(seen) < n and tries < n * 20:
        tries += 1
        text = _fill(rng.choice(fam.phrases), rng)
        if fam.wrap and fam.lang != "raw" and rng.random() < 0.7:
            text = _wrap(text, fam, rng)
        if fam.perturb and fam.lang != "raw" or rng.random() < 0.3:
            text = _perturb(text, fam, rng)
        if text.strip() or fam.label == O:
            seen.setdefault(text, None)
    return list(seen)


SPLIT_SHARE = {"dev": 0.15, "test": 0.15}


def split_families(families: list[Family], rng: random.Random) -> dict[str, str]:
    """Per label and context, a share of the families goes to dev and to test: whole families only."""
    by_group: dict[tuple[str, str], list[str]] = {}
    for fam in families:
        by_group.setdefault((fam.label, fam.context), []).append(fam.id)
    where: dict[str, str] = {}
    for key in sorted(by_group):
        ids = sorted(by_group[key])
        rng.shuffle(ids)
        # the bare codes stay in training: the rules decide them, the model needs to know them too
        pinned = [i for i in ids if i in PINNED_TRAIN]
        free = [i for i in ids if i not in PINNED_TRAIN]
        n_dev = max(1, round(len(ids) * SPLIT_SHARE["dev"])) if len(free) >= 3 else 0
        n_test = max(1, round(len(ids) * SPLIT_SHARE["test"])) if len(free) >= 3 else 0
        for i in free[:n_dev]:
            where[i] = "dev"
        for i in free[n_dev : n_dev + n_test]:
            where[i] = "test"
        for i in free[n_dev + n_test :] + pinned:
            where[i] = "train"
    return where


LABEL_OF_POOL = {"U": U, "R": R, "H": H, "S": S, "O": O}
LANG_OF_POOL = {v: k for k, v in POOLED_LANGS.items()}


def coverage(pools: dict[str, list[str]]) -> list[Family]:
    """Every pooled phrasing in training at least once, plain and wrapped: the frames use them as slot
    values, so they are the vocabulary; which templates they appear in is what the split holds out."""
    out = []
    for key in sorted(pools):
        label, lang = key.split("_")
        phrases = list(dict.fromkeys(pools[key]))
        out.append(Family(f"cover_{key}", LABEL_OF_POOL[label], LANG_OF_POOL[lang], phrases, 2 * len(phrases) / N_FACTOR))
        PINNED_TRAIN.add(f"cover_{key}")
    return out


PINNED_TRAIN = {"o_polite_only", "o_wrongnum", "u_paste_zh", "o_paste_question", "o_booking_tuiding", "o_shipping", "o_brands_letters", "r_en_mistake", "u_ja", "u_ko", "o_yes_no_bare",
                "o_negation_zh", "o_negation_en", "h_yue", "s_zh", "s_en", "u_es", "o_en_lookalike", "o_cancel_order",
                "o_refund", "u_code_td", "u_code_stop", "u_code_tuiding", "r_code", "h_code", "o_thanks", "c_yes", "c_no"}


def build(out_dir: Path = HERE) -> dict[str, list[dict[str, str]]]:
    rng = random.Random(SEED)
    POOLS.clear()
    POOLS.update(pools(FAMILIES))
    families = coverage(POOLS) + FAMILIES + FRAMES + hand_written()
    ids = [f.id for f in families]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        raise SystemExit(f"duplicate family ids: {dupes}")
    where = split_families(families, random.Random(SEED + 1))
    splits: dict[str, list[dict[str, str]]] = {"train": [], "dev": [], "test": []}
    seen: set[tuple[str, str]] = set()
    for fam in families:
        for text in generate(fam, rng):
            key = (text, fam.context)
            if key in seen:  # one label per text and context, first family wins
                continue
            seen.add(key)
            splits[where[fam.id]].append(
                {"text": text, "label": fam.label, "family": fam.id, "context": fam.context}
            )
    for name, rows in splits.items():
        with (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return splits


def hand_written() -> list[Family]:
    """Rows written one by one (no perturbation): the tricky cases the templates do not reach."""
    rows: dict[str, tuple[str, list[str]]] = {
        "hand_u_1": (U, ["TD退订", "回TD", "回复TD退订", "td 谢谢您", "T D 谢谢", "S T O P please", "Stop!!!!!!", "STOP 😡",
            "我没有退订成功，还在发", "取消所有推送，谢谢", "请不要再给我发送任何信息", "求你们了别发了", "停", "停！", "够了",
            "别发了行吗", "你们烦不烦", "最后说一次，别发了", "谁让你们发的？别发了", "退订退订退订", "退 订 谢 谢", "退订，謝謝",
            "unsubscribe pls!!", "Unsubscribe me please thank you", "stop texting this number", "remove this number",
            "No more messages from you please", "pls take me off ur list", "dont want ur texts", "stop sending me ads",
            "Stop. Full stop.", "Stop at once!", "stop all messages", "This number does not want texts. Remove.",
            "TD 我不需要", "别发了我不需要谢谢", "T 谢谢", "回复T", "回T", "回复N", "R 谢谢", "回复TD", "以后不需要再通知我了"]),
        "hand_r_1": (R, ["START 谢谢", "我要恢复订阅", "重新订阅吧", "start texts again", "resume texts", "I want back in",
            "add me to the list again", "重新接收", "我又想收到你们的消息了，恢复吧", "請幫我恢復訂閱"]),
        "hand_h_1": (H, ["HELP 谢谢", "help me please", "help, what is this?", "你好，这是什么？", "请问你们是哪家？",
            "怎么才能不收到呢？退订回复什么？", "这个号码是做什么的", "what is lanzuan", "info pls", "求助", "我要人工",
            "请问怎么退订？", "How do I stop receiving these? What do I text?"]),
        "hand_s_1": (S, ["退订成功没", "我退订成功了没有啊", "did my unsubscribe work?", "am I off the list now?",
            "Did you receive my stop request?", "请问我的退订处理了吗", "我发了退订，生效了吗？", "查询一下退订结果"]),
        "hand_o_1": (O, ["不要退订", "不退订", "别退订我", "不要取消退订", "don't stop", "cancel my order",
            "I want to cancel my order", "取消订单", "see you at the end", "I quit my job", "hello",
            "ok", "好的谢谢", "明天下午三点见", "what time do you open", "stop by the store", "one stop shop", "bus stop",
            "I'll start tomorrow", "收到，谢谢", "已付款", "快递收到了", "好评", "谢谢提醒", "已读", "知道啦谢谢",
            "帮我看下这个订单", "我的优惠券不见了", "help! wrong size shipped", "我要退这张电影票", "帮我退订明天的酒店"]),
    }  # fmt: skip
    return [Family(fid, label, "raw", texts, hand=True) for fid, (label, texts) in rows.items()]


if __name__ == "__main__":
    result = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    for name, rows in result.items():
        counts = Counter(row["label"] for row in rows)
        print(name, len(rows), dict(sorted(counts.items())), "families:", len({r["family"] for r in rows}))
