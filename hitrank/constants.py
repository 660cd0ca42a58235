"""Named constants of the paper's feature pipeline, with their units."""

SAMPLE_RATE = 22050  # Hz, analysis rate of the log-mel (paper, Sec. 2.5)
N_MELS = 128  # mel bins
N_FFT = 4096  # samples (~186 ms at 22050 Hz), Hamming window of the same length
HOP_LENGTH = 2048  # samples, half overlap
SEGMENT_SECONDS = 30.0  # s, length of the Mid-30 / HL-30 segment
SEGMENT_SAMPLES = int(SAMPLE_RATE * SEGMENT_SECONDS)  # 661500 samples at 22050 Hz
#: within-song training's contrast windows by name: the quantile of the mass under the
#: highlighter's curve, among the windows far enough from the highlight, that the contrast
#: window has (hitrank.thumbnail.contrast_window; features.contrast)
CONTRAST_QUANTILES = {"median": 0.5, "lowest": 0.0}
N_FRAMES = 1 + SEGMENT_SAMPLES // HOP_LENGTH  # 323 frames (centred STFT), = ceil(22050*30/2048)

DB_AMIN = 1e-10  # power floor before the dB log (librosa.power_to_db default)
LOG1P_SCALE = 10000.0  # scale of the log(1 + C*S) compression offered as an alternative

FEATURE_DTYPE = "float16"  # on-disk dtype of the feature store

AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc",
    ".au", ".snd", ".caf", ".w64", ".rf64", ".wavex",
)  # containers libsndfile decodes; anything else is reported, not guessed at
UNSUPPORTED_AUDIO_EXTENSIONS = (
    ".m4a", ".m4b", ".m4p", ".mp4", ".aac", ".alac", ".wma", ".asf", ".ape", ".wv", ".mka",
    ".webm", ".weba", ".amr", ".ac3", ".eac3", ".dts", ".mpc", ".3gp", ".ra", ".dsf", ".dff", ".tta",
)  # audio formats libsndfile cannot decode: listed like audio, so that each is reported as a failure

#: The 50 MagnaTagATune tags in hitrank's canonical order (musicnn's output order);
#: every tagger's output and every tags.npy column follow it (map by name, never by index).
TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)
N_TAGS = len(TAGS)  # 50 tag probabilities per song
#: the tagger of ``extract --tagger``, ``tags --model`` and the configs' ``tags.tagger`` when
#: none is named (musicnn: its weights come with ``pip install musicnn``; JYnet needs an import)
DEFAULT_TAGGER = "musicnn"
