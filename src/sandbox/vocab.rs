//! The sandbox world's word lists: niches, names, languages, sentence frames and reply lines.
//!
//! Everything here is fixed data; the generator picks from it with a seeded RNG. Domains in links
//! and e-mail addresses all use the reserved `.example` TLD so nothing points at a real site.

/// One creator niche and the words that make a profile recognisably part of it.
#[derive(Debug)]
pub struct Niche {
    /// Canonical niche name (also what the hidden truth reports).
    pub name: &'static str,
    /// Words a campaign brief about this niche would contain (lower case).
    pub keywords: &'static [&'static str],
    /// Hashtags (without `#`, lower case ASCII) this niche posts with.
    pub tags: &'static [&'static str],
    /// Short self-descriptions for bios ("home cook", "marathon runner").
    pub roles: &'static [&'static str],
    /// Things a post talks about.
    pub subjects: &'static [&'static str],
    /// Emojis sprinkled into bios and posts.
    pub emojis: &'static [&'static str],
    /// Base colours for generated images.
    pub palette: &'static [[u8; 3]],
    /// Probability that a post carries an image.
    pub photo_rate: f64,
    /// Words used to build display names of brand-like accounts.
    pub brand_words: &'static [&'static str],
}

/// All niches, in a fixed order (the index is the niche id).
pub static NICHES: &[Niche] = &[
    Niche {
        name: "food",
        keywords: &["food", "cooking", "recipe", "recipes", "chef", "baking", "kitchen", "cook", "foodie", "restaurant"],
        tags: &["food", "foodie", "recipes", "baking", "sourdough", "vegan", "homecooking", "brunch"],
        roles: &["home cook", "pastry chef", "recipe developer", "food photographer", "sourdough nerd", "restaurant critic"],
        subjects: &["a slow-cooked ragù", "sourdough with a crazy open crumb", "weeknight noodle bowls", "lemon olive oil cake", "a spicy chickpea curry", "homemade gnocchi", "a farmers' market haul", "fermented hot sauce"],
        emojis: &["🍝", "🥖", "🍰", "🌶️", "🥗", "🍜"],
        palette: &[[214, 96, 58], [240, 180, 70], [120, 160, 60], [250, 230, 200]],
        photo_rate: 0.75,
        brand_words: &["Kitchen", "Table", "Bakery", "Bowl", "Pantry"],
    },
    Niche {
        name: "fitness",
        keywords: &["fitness", "workout", "gym", "training", "running", "yoga", "athlete", "coach", "strength", "marathon"],
        tags: &["fitness", "workout", "running", "yoga", "gym", "strengthtraining", "marathon", "mobility"],
        roles: &["personal trainer", "marathon runner", "yoga teacher", "strength coach", "climber", "physio"],
        subjects: &["a 10k tempo run", "deadlift day", "a 20-minute mobility routine", "my first pull-up", "sunrise yoga", "a recovery week", "hill sprints", "a kettlebell circuit"],
        emojis: &["💪", "🏃", "🧘", "🏋️", "🔥", "🚴"],
        palette: &[[30, 144, 255], [255, 69, 0], [50, 205, 50], [40, 40, 40]],
        photo_rate: 0.55,
        brand_words: &["Strength", "Studio", "Athletics", "Motion", "Gym"],
    },
    Niche {
        name: "travel",
        keywords: &["travel", "traveler", "trip", "backpacking", "destination", "adventure", "hiking", "wanderlust", "tourism", "nomad"],
        tags: &["travel", "wanderlust", "backpacking", "hiking", "roadtrip", "vanlife", "traveltips", "digitalnomad"],
        roles: &["travel writer", "digital nomad", "backpacker", "travel photographer", "tour guide", "van lifer"],
        subjects: &["a night train through the Alps", "hidden beaches in the Algarve", "street food in Hanoi", "a rainy day in Kyoto", "hiking the Dolomites", "budget tips for Iceland", "a ferry at dawn", "the quietest old town I know"],
        emojis: &["✈️", "🌍", "🏔️", "🏝️", "🧭", "🚐"],
        palette: &[[0, 119, 190], [244, 208, 63], [46, 139, 87], [135, 206, 235]],
        photo_rate: 0.8,
        brand_words: &["Journeys", "Roads", "Atlas", "Compass", "Trails"],
    },
    Niche {
        name: "gaming",
        keywords: &["gaming", "gamer", "games", "videogames", "esports", "streamer", "twitch", "indie game", "rpg", "console"],
        tags: &["gaming", "indiegames", "retrogaming", "gamedev", "speedrun", "twitch", "rpg", "nintendo"],
        roles: &["streamer", "speedrunner", "indie game dev", "retro collector", "esports caster", "game reviewer"],
        subjects: &["a new speedrun PB", "a cozy indie farming game", "my retro handheld collection", "tonight's co-op stream", "a boss that took 40 tries", "pixel art for my game", "the best RPG of the year", "a controller mod"],
        emojis: &["🎮", "👾", "🕹️", "🏆", "⚔️", "🐉"],
        palette: &[[138, 43, 226], [0, 255, 170], [255, 20, 147], [20, 20, 60]],
        photo_rate: 0.45,
        brand_words: &["Pixel", "Arcade", "Quest", "Loot", "Respawn"],
    },
    Niche {
        name: "tech",
        keywords: &["tech", "technology", "software", "developer", "programming", "open source", "coding", "engineer", "ai", "linux"],
        tags: &["tech", "rust", "opensource", "linux", "programming", "selfhosted", "webdev", "ai"],
        roles: &["software engineer", "open source maintainer", "sysadmin", "security researcher", "tech writer", "data scientist"],
        subjects: &["a tricky race condition", "my homelab rack", "a new release of my library", "why I switched editors", "benchmarking a parser", "a weekend Raspberry Pi project", "writing better error messages", "a talk I gave on testing"],
        emojis: &["💻", "🐧", "🦀", "⚙️", "🔧", "🤖"],
        palette: &[[33, 33, 33], [0, 200, 83], [66, 133, 244], [200, 200, 200]],
        photo_rate: 0.3,
        brand_words: &["Labs", "Systems", "Stack", "Byte", "Dev"],
    },
    Niche {
        name: "fashion",
        keywords: &["fashion", "style", "outfit", "clothing", "designer", "model", "beauty", "vintage", "streetwear", "wardrobe"],
        tags: &["fashion", "ootd", "style", "vintage", "streetwear", "sustainablefashion", "thrifting", "beauty"],
        roles: &["stylist", "fashion designer", "vintage seller", "model", "slow fashion advocate", "makeup artist"],
        subjects: &["a thrifted wool coat", "today's outfit", "capsule wardrobe basics", "a linen summer look", "mending a favourite jacket", "colour palettes for autumn", "a sustainable denim brand", "my sewing pattern haul"],
        emojis: &["👗", "👠", "🧥", "💄", "🕶️", "🧵"],
        palette: &[[255, 182, 193], [128, 0, 32], [245, 245, 220], [25, 25, 112]],
        photo_rate: 0.85,
        brand_words: &["Atelier", "Closet", "Threads", "Studio", "Wardrobe"],
    },
    Niche {
        name: "music",
        keywords: &["music", "musician", "band", "songwriter", "producer", "guitar", "dj", "singer", "album", "vinyl"],
        tags: &["music", "newmusic", "vinyl", "synth", "guitar", "livemusic", "jazz", "musicproduction"],
        roles: &["songwriter", "bedroom producer", "jazz pianist", "DJ", "session guitarist", "vinyl collector"],
        subjects: &["a new track I finished", "a modular synth patch", "tonight's gig", "a record store find", "learning a new chord voicing", "mixing vocals at 2am", "my pedalboard", "an album that changed me"],
        emojis: &["🎵", "🎸", "🎹", "🎧", "🥁", "🎤"],
        palette: &[[255, 215, 0], [75, 0, 130], [220, 20, 60], [0, 0, 0]],
        photo_rate: 0.4,
        brand_words: &["Records", "Sound", "Tapes", "Audio", "Beats"],
    },
    Niche {
        name: "art",
        keywords: &["art", "artist", "illustration", "painting", "drawing", "illustrator", "ceramics", "sculpture", "watercolor", "design"],
        tags: &["art", "illustration", "watercolor", "ceramics", "drawing", "mastoart", "painting", "sketchbook"],
        roles: &["illustrator", "ceramic artist", "watercolour painter", "comic artist", "printmaker", "muralist"],
        subjects: &["a new watercolour landscape", "glazing tests from the kiln", "a page from my sketchbook", "a linocut print", "a commission I just finished", "colour studies", "an ink drawing of my cat", "a mural in progress"],
        emojis: &["🎨", "🖌️", "✏️", "🏺", "🖼️", "✨"],
        palette: &[[0, 128, 128], [255, 127, 80], [106, 90, 205], [255, 250, 240]],
        photo_rate: 0.85,
        brand_words: &["Studio", "Prints", "Pottery", "Ink", "Canvas"],
    },
    Niche {
        name: "photography",
        keywords: &["photography", "photographer", "camera", "photo", "film", "portrait", "landscape", "lens", "35mm", "street photography"],
        tags: &["photography", "filmphotography", "streetphotography", "landscape", "35mm", "portrait", "blackandwhite", "nature"],
        roles: &["street photographer", "film shooter", "landscape photographer", "portrait photographer", "photo editor", "wildlife photographer"],
        subjects: &["a roll of expired film", "golden hour on the pier", "a foggy forest", "portraits at the market", "a black and white street scene", "a new prime lens", "birds at the lake", "night long exposures"],
        emojis: &["📷", "🎞️", "🌅", "🌲", "🌃", "🦅"],
        palette: &[[90, 90, 90], [210, 180, 140], [70, 130, 180], [255, 140, 0]],
        photo_rate: 0.95,
        brand_words: &["Frames", "Light", "Lens", "Exposure", "Darkroom"],
    },
    Niche {
        name: "books",
        keywords: &["books", "reading", "author", "writer", "novel", "bookworm", "literature", "poetry", "library", "fiction"],
        tags: &["books", "reading", "amreading", "bookstodon", "writing", "poetry", "scifi", "fantasy"],
        roles: &["novelist", "book reviewer", "librarian", "poet", "indie author", "editor"],
        subjects: &["a novel I could not put down", "my reading stack for the month", "a line of poetry", "chapter twelve of my draft", "a used bookshop find", "the book club pick", "a sci-fi classic", "editing notes"],
        emojis: &["📚", "📖", "✍️", "🖋️", "☕", "🔖"],
        palette: &[[139, 69, 19], [255, 248, 220], [47, 79, 79], [178, 34, 34]],
        photo_rate: 0.35,
        brand_words: &["Books", "Pages", "Press", "Shelf", "Ink"],
    },
    Niche {
        name: "pets",
        keywords: &["pets", "dog", "cat", "dogs", "cats", "animals", "puppy", "kitten", "rescue", "vet"],
        tags: &["caturday", "dogsofmastodon", "catsofmastodon", "pets", "rescuedog", "kitten", "puppy", "animals"],
        roles: &["dog trainer", "cat parent", "rescue volunteer", "vet nurse", "pet photographer", "foster carer"],
        subjects: &["my cat's new favourite box", "a long walk with the dogs", "our foster kittens", "a rescue update", "training recall at the park", "a very sleepy puppy", "vet visit day", "the zoomies"],
        emojis: &["🐶", "🐱", "🐾", "🦴", "🐕", "🐈"],
        palette: &[[205, 133, 63], [255, 228, 196], [112, 128, 144], [34, 139, 34]],
        photo_rate: 0.9,
        brand_words: &["Paws", "Tails", "Whiskers", "Pack", "Den"],
    },
    Niche {
        name: "gardening",
        keywords: &["gardening", "garden", "plants", "gardener", "allotment", "houseplants", "botany", "permaculture", "seeds", "flowers"],
        tags: &["gardening", "houseplants", "allotment", "permaculture", "plants", "flowers", "growyourown", "botany"],
        roles: &["allotment gardener", "plant collector", "botanist", "permaculture designer", "florist", "seed saver"],
        subjects: &["the first tomatoes of the year", "repotting my monstera", "a no-dig bed", "dahlias in full bloom", "seed swap finds", "composting basics", "a rainy day in the greenhouse", "saving bean seeds"],
        emojis: &["🌱", "🌻", "🍅", "🪴", "🌷", "🐝"],
        palette: &[[34, 139, 34], [255, 215, 0], [139, 69, 19], [199, 21, 133]],
        photo_rate: 0.8,
        brand_words: &["Garden", "Greenhouse", "Seeds", "Roots", "Bloom"],
    },
];

/// Hashtags anyone may use regardless of niche.
pub static GENERAL_TAGS: &[&str] = &["introduction", "weekend", "photooftheday", "mondaymotivation", "smallbusiness", "community"];

/// First names used for people's display names and usernames.
pub static FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Leo", "Maya", "Noah", "Olivia",
    "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wes", "Yuki", "Zoe", "Amir", "Bea", "Chloe", "Diego", "Emma",
    "Finn", "Hana", "Ivan", "Julia", "Kenji", "Lena", "Marco", "Nina", "Oskar", "Priya", "Rafael", "Sofia", "Theo", "Lucia",
    "Mateo", "Louise", "Camille", "Haruto", "Sakura", "Joana",
];

/// Family names for display names.
pub static LAST_NAMES: &[&str] = &[
    "Becker", "Martin", "Rossi", "Silva", "Garcia", "Dubois", "Schmidt", "Tanaka", "Kowalski", "Nguyen", "Smith", "Jones",
    "Moreau", "Ferreira", "Lopez", "Bianchi", "Weber", "Sato", "Novak", "Okafor", "Larsen", "Costa", "Meyer", "Romano", "Ito",
];

/// Profile languages: ISO 639-1 code and relative weight (English dominates, as on the fediverse).
pub static LANGUAGES: &[(&str, f64)] = &[("en", 60.0), ("de", 10.0), ("fr", 8.0), ("es", 8.0), ("pt", 5.0), ("it", 5.0), ("ja", 4.0)];

/// Sentence frames per language: bio openers with `{role}`, and post lines with `{subject}`.
pub struct LanguageText {
    /// ISO 639-1 code.
    pub code: &'static str,
    /// Bio first sentences; `{role}` is replaced by a niche role.
    pub bio: &'static [&'static str],
    /// Bio closers (collaboration hints and the like).
    pub bio_extra: &'static [&'static str],
    /// Post sentences; `{subject}` is replaced by a niche subject.
    pub posts: &'static [&'static str],
    /// Positive or neutral replies to a DM.
    pub replies: &'static [&'static str],
    /// Replies asking not to be contacted again.
    pub opt_outs: &'static [&'static str],
}

/// Text frames for each language in [`LANGUAGES`].
pub static TEXTS: &[LanguageText] = &[
    LanguageText {
        code: "en",
        bio: &["{role} sharing what I love.", "Full-time {role}, part-time dreamer.", "{role} based in the city. Opinions are my own.", "Just a {role} trying things out.", "Professional {role}. Teaching, learning, posting."],
        bio_extra: &["Open to collaborations.", "DMs open for projects.", "New posts every week.", "Say hi!", "Slow replies, but I read everything."],
        posts: &["Today: {subject}. What do you think?", "Finally tried {subject} and I'm hooked.", "Quick share: {subject}.", "Weekend plans: {subject}.", "Can't stop thinking about {subject}.", "Throwback to {subject}."],
        replies: &["Hi! Thanks for reaching out, this sounds interesting. Tell me more?", "Thanks for the message! Happy to chat about it.", "Oh nice, I'd be up for that. What are the next steps?", "Thanks! I'll have a look this week.", "Sounds fun. Can you send details by email?"],
        opt_outs: &["Please stop messaging me.", "Not interested, thanks.", "Unsubscribe.", "Please don't contact me again.", "stop"],
    },
    LanguageText {
        code: "de",
        bio: &["{role} und teile, was ich liebe.", "Hauptberuflich {role}.", "{role} aus Berlin. Meinungen sind meine eigenen.", "Hier schreibt ein {role}."],
        bio_extra: &["Offen für Kooperationen.", "Neue Beiträge jede Woche.", "Sag hallo!"],
        posts: &["Heute: {subject}. Was meint ihr?", "Endlich ausprobiert: {subject}.", "Kurz geteilt: {subject}.", "Wochenendpläne: {subject}."],
        replies: &["Hallo! Danke für die Nachricht, klingt spannend. Erzähl mehr!", "Danke, ich schaue es mir diese Woche an.", "Gerne, lass uns darüber reden."],
        opt_outs: &["Bitte nicht mehr schreiben.", "Kein Interesse, danke.", "Bitte keine Nachrichten mehr."],
    },
    LanguageText {
        code: "fr",
        bio: &["{role}, je partage ce que j'aime.", "{role} à plein temps.", "{role} à Lyon. Avis personnels.", "Simple {role} qui expérimente."],
        bio_extra: &["Ouvert aux collaborations.", "Nouveaux posts chaque semaine.", "Dites bonjour !"],
        posts: &["Aujourd'hui : {subject}. Vous en pensez quoi ?", "Enfin essayé : {subject}.", "Petit partage : {subject}.", "Programme du week-end : {subject}."],
        replies: &["Bonjour ! Merci pour le message, ça m'intéresse. Dites-m'en plus ?", "Merci, je regarde ça cette semaine.", "Avec plaisir, parlons-en."],
        opt_outs: &["Arrête de m'écrire, merci.", "Pas intéressé.", "Merci de ne plus me contacter."],
    },
    LanguageText {
        code: "es",
        bio: &["{role} compartiendo lo que me gusta.", "{role} a tiempo completo.", "{role} en Madrid. Opiniones propias.", "Solo un {role} probando cosas."],
        bio_extra: &["Abierto a colaboraciones.", "Publicaciones nuevas cada semana.", "¡Saluda!"],
        posts: &["Hoy: {subject}. ¿Qué opináis?", "Por fin probé {subject}.", "Comparto rápido: {subject}.", "Planes de finde: {subject}."],
        replies: &["¡Hola! Gracias por escribir, suena interesante. ¿Me cuentas más?", "Gracias, lo miro esta semana.", "Claro, hablemos."],
        opt_outs: &["No me interesa, gracias.", "Por favor, no me escribas más.", "Basta de mensajes."],
    },
    LanguageText {
        code: "pt",
        bio: &["{role} partilhando o que amo.", "{role} a tempo inteiro.", "{role} em Lisboa. Opiniões próprias."],
        bio_extra: &["Aberto a colaborações.", "Posts novos toda semana.", "Diga olá!"],
        posts: &["Hoje: {subject}. O que acham?", "Finalmente experimentei {subject}.", "Partilha rápida: {subject}."],
        replies: &["Olá! Obrigado pela mensagem, parece interessante. Conta mais?", "Obrigado, vou ver esta semana."],
        opt_outs: &["Não tenho interesse, obrigado.", "Por favor, pare de me enviar mensagens."],
    },
    LanguageText {
        code: "it",
        bio: &["{role} e condivido ciò che amo.", "{role} a tempo pieno.", "{role} a Milano. Opinioni mie."],
        bio_extra: &["Aperto a collaborazioni.", "Nuovi post ogni settimana.", "Passa a salutare!"],
        posts: &["Oggi: {subject}. Che ne pensate?", "Finalmente provato {subject}.", "Condivisione veloce: {subject}."],
        replies: &["Ciao! Grazie del messaggio, sembra interessante. Mi dici di più?", "Grazie, ci guardo questa settimana."],
        opt_outs: &["Non mi interessa, grazie.", "Per favore, non scrivermi più."],
    },
    LanguageText {
        code: "ja",
        bio: &["{role}です。好きなことを発信しています。", "{role}として活動中。", "東京の{role}。"],
        bio_extra: &["お仕事のご依頼はDMへ。", "毎週更新します。"],
        posts: &["今日は{subject}。どう思いますか？", "ついに{subject}を試しました。", "{subject}をシェアします。"],
        replies: &["ご連絡ありがとうございます！詳しく教えてください。", "ありがとうございます。今週確認します。"],
        opt_outs: &["興味ありません。", "もう連絡しないでください。"],
    },
];

/// The text frames for a language code (English when unknown).
pub fn texts_for(code: &str) -> &'static LanguageText {
    TEXTS.iter().find(|t| t.code == code).unwrap_or(&TEXTS[0])
}

/// Field names used in profile link fields.
pub static LINK_FIELD_NAMES: &[&str] = &["Website", "Shop", "Portfolio", "Blog", "Newsletter"];

/// Non-link profile fields (name, possible values).
pub static TEXT_FIELDS: &[(&str, &[&str])] = &[
    ("Pronouns", &["she/her", "he/him", "they/them"]),
    ("Location", &["Berlin", "Lisbon", "Lyon", "Madrid", "Osaka", "Toronto", "Leeds", "Milan"]),
    ("Since", &["2017", "2019", "2022", "2023"]),
];

/// Bio lines bots use.
pub static BOT_BIOS: &[&str] = &[
    "Automated account posting {topic} content every hour.",
    "I am a bot. I repost the best {topic} links I can find.",
    "Feed bot for {topic} news. Not monitored.",
];
