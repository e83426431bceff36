-- Searches ignore accents, as SQLite's index does (its tokenizer removes diacritics):
-- `muller` finds Zoë Müller and `núñez` finds jose.nunez@…. `tend_fold` maps each
-- accented Latin letter to its plain lower-case letter with one `translate`, instead
-- of the `unaccent` extension, which a managed server may not allow to be installed
-- and which cannot be used in an index as it is. Letters that are not an accented
-- form of another (ø, ł, ß) stay as they are, as on SQLite. The index is rebuilt over
-- the folded words; searches fold their words the same way.
CREATE FUNCTION tend_fold(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT translate($1,
    'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳ',
    'aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaaccccccccddeeeeeeeeeegggggggghhiiiiiiiiijjkkllllllnnnnnnoooooorrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzzzoouuaaiioouuuuuuuuuuaaaaggkkoooojggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeooooooooyy') $$;

DROP INDEX contacts_search;
CREATE INDEX contacts_search ON contacts USING gin (
    to_tsvector('simple', tend_fold(translate(coalesce(email, ''), '@.+_-', '     ') || ' ' || coalesce(name, '')))
);
