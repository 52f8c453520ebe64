package provider

// DefaultBaseURL is the CaptchaAI endpoint: in.php and res.php live under
// it. 2captcha's, with the same API, is https://2captcha.com.
const DefaultBaseURL = "https://ocr.captchaai.com"

// The in.php parameters that typed requests set, as the API spells them.
// The method table (methods.go), Validate and the typed requests of
// package captchafsm read the names from here.
const (
	ParamBody      = "body"      // an image (or audio file), base64
	ParamPageURL   = "pageurl"   // the page that shows the challenge
	ParamGoogleKey = "googlekey" // reCAPTCHA's site key
	ParamSiteKey   = "sitekey"   // hCaptcha's, Turnstile's and others' site key
	ParamPublicKey = "publickey" // FunCaptcha's public key
	ParamGT        = "gt"        // GeeTest v3's gt
	ParamChallenge = "challenge" // GeeTest v3's challenge
	ParamCaptchaID = "captcha_id"
	ParamAPIServer = "api_server"

	ParamInvisible  = "invisible"  // 1: an invisible reCAPTCHA or hCaptcha
	ParamEnterprise = "enterprise" // 1: reCAPTCHA Enterprise
	ParamVersion    = "version"    // reCAPTCHA's v2 or v3
	ParamAction     = "action"     // reCAPTCHA v3's or Turnstile's action
	ParamMinScore   = "min_score"  // reCAPTCHA v3's lowest score wanted
	ParamDataS      = "data-s"     // reCAPTCHA's data-s
	ParamData       = "data"       // hCaptcha's rqdata, Turnstile's cData
	ParamPageData   = "pagedata"   // Turnstile's chlPageData
	ParamSURL       = "surl"       // FunCaptcha's service URL
	ParamBlob       = "data[blob]" // FunCaptcha's data blob

	ParamUserAgent = "userAgent"
	ParamCookies   = "cookies"
	ParamProxy     = "proxy"     // host:port or login:password@host:port
	ParamProxyType = "proxytype" // HTTP, HTTPS, SOCKS4 or SOCKS5

	ParamNumeric          = "numeric"  // 1 digits, 2 letters, 3 either, 4 both
	ParamMinLen           = "min_len"  // the answer's shortest length
	ParamMaxLen           = "max_len"  // and longest
	ParamPhrase           = "phrase"   // 1: the answer has a space
	ParamRegSense         = "regsense" // 1: case matters
	ParamCalc             = "calc"     // 1: the image is a sum to work out
	ParamLang             = "lang"     // the answer's language
	ParamTextInstructions = "textinstructions"
)
